// node:http2 as the bundle gives it to undici (scripts/bundle.sh aliases it here). undici's
// HTTP/2 client loads node:http2 as soon as it loads, for a few constants, and that was
// 17 ms of every start-up; we never speak HTTP/2 (undici's allowH2 stays off). These are
// the constants it reads, as Node defines them (a test compares), and the real module
// behind connect() on first use.
import { createRequire } from 'node:module';
import type * as Http2 from 'node:http2';

export const constants = {
  HTTP2_HEADER_AUTHORITY: ':authority',
  HTTP2_HEADER_METHOD: ':method',
  HTTP2_HEADER_PATH: ':path',
  HTTP2_HEADER_SCHEME: ':scheme',
  HTTP2_HEADER_CONTENT_LENGTH: 'content-length',
  HTTP2_HEADER_EXPECT: 'expect',
  HTTP2_HEADER_STATUS: ':status',
  HTTP2_HEADER_PROTOCOL: ':protocol',
  NGHTTP2_REFUSED_STREAM: 7,
  NGHTTP2_CANCEL: 8,
} as const;

export function connect(...args: Parameters<typeof Http2.connect>): Http2.ClientHttp2Session {
  return (createRequire(import.meta.url)('node:http2') as typeof Http2).connect(...args);
}
