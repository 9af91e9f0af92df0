// A file's bytes as one plain file in the cache, for the kernel to read by itself (FUSE
// passthrough, fs/operations.ts): a file of one chunk is its verified chunk file; a file
// of many is written once beside its chunks as they arrive (chunkcache/ChunkStore.growFile),
// named by its chunk list, so the same content in two layers shares one. Holes are zeros.
import { LRUCache } from 'lru-cache';
import type { InodeTable } from '../toc/inode-db.js';
import type { ViewNode } from '../toc/view.js';
import type { FilePiece } from '../chunkcache/chunk-store.js';

/** What this needs of the chunk cache. */
export interface WholeFileCache {
  /** Cached, on disk or still to be written. */
  has(digest: Buffer): boolean;
  /** Writes what is still to be written (write-behind), now. */
  drain(): Promise<void>;
  verifiedFile(digest: Buffer): string | undefined;
  wholeFile(pieces: readonly FilePiece[]): string | undefined;
  assembleFile(pieces: readonly FilePiece[]): Promise<string | undefined>;
  growFile(pieces: readonly FilePiece[]): Promise<string | undefined>;
  finishingFile(pieces: readonly FilePiece[]): Promise<string | undefined> | undefined;
}

/** How long an assembly waits for the file's last chunks to be written. */
const DRAIN_WAIT_MS = 5_000;

/** Files whose piece lists are kept: an open asks for one up to three times, and a file's chunks never change. */
const KEPT_FILES = 1024;

export class WholeFiles {
  private readonly kept = new LRUCache<number, { p: FilePiece[] | undefined }>({ max: KEPT_FILES });

  constructor(private readonly table: InodeTable, private readonly cache: WholeFileCache) {}

  /** The file's pieces in order; undefined if its chunks do not cover it end to end (nothing to hand the kernel). */
  private pieces(node: ViewNode): FilePiece[] | undefined {
    let k = this.kept.get(node.dataId);
    if (k === undefined) this.kept.set(node.dataId, (k = { p: this.read(node) }));
    return k.p;
  }

  private read(node: ViewNode): FilePiece[] | undefined {
    const out: FilePiece[] = [];
    let at = 0;
    for (const c of this.table.chunks(node.dataId, 0, node.size)) {
      if (c.chunk_offset !== at) return undefined;
      out.push({ digest: c.zeros ? null : c.digest, size: c.chunk_size });
      at += c.chunk_size;
    }
    return at === node.size && out.length > 0 ? out : undefined;
  }

  /** The plain file holding the whole file now, if the cache has one (cheap: an index lookup). */
  path(node: ViewNode): string | undefined {
    const p = this.pieces(node);
    if (p === undefined) return undefined;
    if (p.length === 1) return p[0]?.digest !== null && p[0]?.digest !== undefined ? this.cache.verifiedFile(p[0].digest) : undefined;
    return this.cache.wholeFile(p);
  }

  /**
   * Makes that plain file from the chunks cached now, or for a file of one chunk waits for
   * that chunk's file to be written; undefined when some chunk is not cached, or there is
   * no room.
   */
  async assemble(node: ViewNode): Promise<string | undefined> {
    const p = this.pieces(node);
    if (p === undefined) return undefined;
    if (p.length > 1) return this.cache.assembleFile(p);
    const only = p[0]?.digest;
    if (only === null || only === undefined || !this.cache.has(only)) return undefined;
    // Read just now, its chunk may still be on its way to disk (write-behind).
    if (this.cache.verifiedFile(only) === undefined) {
      await Promise.race([this.cache.drain(), new Promise((r) => setTimeout(r, DRAIN_WAIT_MS).unref())]);
    }
    return this.cache.verifiedFile(only);
  }

  /**
   * For a file of many chunks, starts that plain file now, written as its chunks arrive
   * (the file is being opened): resolves with its path once whole, undefined if it is never
   * made (ChunkStore.growFile). A file of one chunk needs none: its chunk file is it.
   */
  grow(node: ViewNode): Promise<string | undefined> | undefined {
    const p = this.pieces(node);
    return p !== undefined && p.length > 1 ? this.cache.growFile(p) : undefined;
  }

  /** That file, when every chunk of it is in and only its writes are left (ChunkStore.finishingFile). */
  finishing(node: ViewNode): Promise<string | undefined> | undefined {
    const p = this.pieces(node);
    return p !== undefined && p.length > 1 ? this.cache.finishingFile(p) : undefined;
  }
}
