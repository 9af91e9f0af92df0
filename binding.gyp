{
  "targets": [
    {
      "target_name": "stargzfs_fuse",
      "sources": ["native/fuse_session.cc", "native/open_table.cc", "native/read_map.cc", "native/stdio.cc", "native/memory.cc", "native/socket.cc", "native/supervisor_link.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    },
    {
      "target_name": "stargzfs-serve-client",
      "type": "executable",
      "sources": ["native/serve_client.c"],
      "cflags": ["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "stargzfs-supervisor",
      "type": "executable",
      "sources": ["native/supervisor.c"],
      "cflags": ["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
