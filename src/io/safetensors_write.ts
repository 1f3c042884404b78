/**
 * Writing safetensors files: one file at once from tensors in memory, a
 * sharded checkpoint whose layout is known in advance written straight into
 * its shards, or a sharded checkpoint streamed tensor by tensor through
 * spill files on disk.
 *
 * @module
 */

import { crashPoint } from "../crash_points.ts";
import { LlmcError } from "../errors.ts";
import { DTYPE_BYTES } from "./dtype.ts";
import type { DType } from "./dtype.ts";
import { checkTensorForWrite, headerBytes } from "./_safetensors_layout.ts";
import type { LayoutEntry } from "./_safetensors_layout.ts";
import { joinPath, pathExists, removeIfPresent } from "./_path.ts";
import { SafetensorsError } from "./safetensors_error.ts";

/** One tensor to write: raw little-endian bytes with their dtype and shape. */
export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Extra `__metadata__` strings, merged over the default `{"format": "pt"}`. */
  metadata?: Record<string, string>;
  /** Replace an existing file (default: refuse). */
  overwrite?: boolean;
}

const DEFAULT_METADATA: Readonly<Record<string, string>> = { format: "pt" };

/**
 * Writes tensors to one safetensors file, atomically: the bytes go to
 * `path + ".tmp-<pid>"`, which is renamed over `path` only once complete.
 *
 * @param path the output file
 * @param tensors the tensors, laid out in this order
 * @param options metadata and overwrite permission
 * @throws {SafetensorsError} when `path` exists (without `overwrite`), a
 *   tensor is inconsistent or names repeat; no file is left behind
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/x.safetensors`, [
 *   { name: "w", dtype: "F32", shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) },
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const seen = new Set<string>();
  const entries: LayoutEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    checkTensorForWrite(path, t.name, t.dtype, t.shape, t.data?.byteLength);
    if (seen.has(t.name)) throw new SafetensorsError(path, `tensor '${t.name}' is given twice`);
    seen.add(t.name);
    entries.push({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      begin: offset,
      end: offset + t.data.byteLength,
    });
    offset += t.data.byteLength;
  }
  if (!options.overwrite && await pathExists(path)) {
    throw new SafetensorsError(path, "already exists; pass overwrite: true to replace it");
  }
  const header = headerBytes(entries, { ...DEFAULT_METADATA, ...options.metadata });
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await writeAll(file, header);
      for (const t of tensors) await writeAll(file, t.data);
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await removeIfPresent(tmp);
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(path, `write failed: ${(e as Error).message}`, { cause: e });
  }
}

/** Options of {@link ShardedSafetensorsWriter}. */
export interface ShardedWriterOptions {
  /** Upper bound on a shard's tensor bytes (default 5e9, transformers' 5 GB). */
  maxShardBytes?: number;
}

/** What {@link ShardedSafetensorsWriter.finish} wrote. */
export interface ShardedWriteResult {
  /** Paths of the safetensors files, in shard order (inside the writer's dir). */
  files: string[];
  /** Sum of all tensors' byte lengths (as HF's index `total_size`). */
  totalSize: number;
  /** Tensor name → file name (no folder), as in the index. */
  weightMap: Record<string, string>;
  /** Path of `model.safetensors.index.json`, or null for a single shard. */
  indexFile: string | null;
}

interface Shard {
  spill: string;
  entries: LayoutEntry[];
  bytes: number;
}

/** The file name of sharded checkpoints' index. */
export const SAFETENSORS_INDEX_NAME = "model.safetensors.index.json";

/** Whether a tensor of `bytes` starts a new shard after one holding `shardBytes` (transformers' rule). */
function startsNewShard(shardBytes: number, bytes: number, maxShardBytes: number): boolean {
  return shardBytes > 0 && shardBytes + bytes > maxShardBytes;
}

/** `model.safetensors`, or `model-0000k-of-0000n.safetensors` (k from 1) of several. */
function shardFileName(k: number, n: number): string {
  const pad = (i: number) => String(i).padStart(5, "0");
  return n === 1 ? "model.safetensors" : `model-${pad(k + 1)}-of-${pad(n)}.safetensors`;
}

/** Sets `map[key]` as an own property, even for keys such as `__proto__`. */
function setOwn(map: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Writes the index of a sharded checkpoint as transformers does: sorted keys, 2-space indent. */
async function writeIndex(
  indexFile: string,
  weightMap: Record<string, string>,
  totalSize: number,
): Promise<void> {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(weightMap).sort()) setOwn(sorted, key, weightMap[key]);
  const json = JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sorted }, null, 2);
  await Deno.writeTextFile(indexFile, json + "\n", { createNew: true });
}

/** A tensor whose dtype and shape are known before its bytes, which are read when they are written. */
export interface PlannedTensor {
  /** The tensor name (unique in the checkpoint). */
  readonly name: string;
  /** Its dtype. */
  readonly dtype: DType;
  /** Its shape. */
  readonly shape: readonly number[];
  /** Reads its little-endian bytes, numel × dtype size of them; called once, at its turn. */
  read(): Promise<Uint8Array>;
}

/** Options of {@link writePlannedSafetensors}. */
export interface PlannedWriteOptions extends ShardedWriterOptions {
  /**
   * Flush each shard to the disk before returning (default true). False for
   * a scratch folder that only this process reads and that no later run
   * resumes from: a crash makes it garbage either way.
   */
  durable?: boolean;
}

/** The size of the buffer that gathers small tensors into one write. */
const WRITE_BUFFER_BYTES = 4 << 20;

/** Appends bytes to a file, small pieces gathered in one buffer so they cost one write. */
class BufferedAppender {
  readonly #file: Deno.FsFile;
  readonly #buffer = new Uint8Array(WRITE_BUFFER_BYTES);
  #used = 0;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  async append(data: Uint8Array): Promise<void> {
    if (this.#used + data.byteLength > this.#buffer.byteLength) await this.flush();
    if (data.byteLength >= this.#buffer.byteLength) {
      await writeAll(this.#file, data);
      return;
    }
    this.#buffer.set(data, this.#used);
    this.#used += data.byteLength;
  }

  async flush(): Promise<void> {
    await writeAll(this.#file, this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

/**
 * Writes a sharded checkpoint whose tensors are all known in advance
 * straight into its shard files: each shard's header first, then its
 * tensors' bytes, read one tensor at a time (bounded memory) and written
 * once. The files, their split into shards and the index are those
 * {@link ShardedSafetensorsWriter} writes for the same tensors in the same
 * order; there are no spill files to write and copy. Write into a temporary
 * folder (see atomic_dir.ts) and rename it when done.
 *
 * @param dir an existing folder to write into
 * @param tensors the tensors, in data order
 * @param options the shard size bound, whether to flush the shards to the disk
 * @returns the files written, the total tensor bytes and the weight map
 * @throws {SafetensorsError} for a repeated name, an inconsistent tensor, bytes of
 *   the wrong length or an I/O failure; an error of llmc's own from a tensor's
 *   `read` as it is. The files written so far are removed
 * @example
 * ```ts
 * import { writePlannedSafetensors } from "./safetensors_write.ts";
 * const dir = await Deno.makeTempDir();
 * const bytes = new Uint8Array(8);
 * const { files } = await writePlannedSafetensors(dir, [
 *   { name: "a", dtype: "U8", shape: [8], read: () => Promise.resolve(bytes) },
 *   { name: "b", dtype: "U8", shape: [8], read: () => Promise.resolve(bytes) },
 * ], { maxShardBytes: 8 }); // two shards and an index
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writePlannedSafetensors(
  dir: string,
  tensors: readonly PlannedTensor[],
  options: PlannedWriteOptions = {},
): Promise<ShardedWriteResult> {
  const max = options.maxShardBytes ?? 5e9;
  if (!(max > 0)) throw new SafetensorsError(dir, `maxShardBytes must be positive, got ${max}`);
  const names = new Set<string>();
  const shards: { entries: LayoutEntry[]; tensors: PlannedTensor[]; bytes: number }[] = [];
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[t.dtype] ?? NaN);
    checkTensorForWrite(dir, t.name, t.dtype, [...t.shape], bytes);
    if (names.has(t.name)) throw new SafetensorsError(dir, `tensor '${t.name}' is given twice`);
    names.add(t.name);
    let shard = shards[shards.length - 1];
    if (shard === undefined || startsNewShard(shard.bytes, bytes, max)) {
      shard = { entries: [], tensors: [], bytes: 0 };
      shards.push(shard);
    }
    shard.entries.push({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      begin: shard.bytes,
      end: shard.bytes + bytes,
    });
    shard.tensors.push(t);
    shard.bytes += bytes;
  }
  if (shards.length === 0) shards.push({ entries: [], tensors: [], bytes: 0 });
  const n = shards.length;
  const written: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  try {
    for (const [k, shard] of shards.entries()) {
      const name = shardFileName(k, n);
      const path = joinPath(dir, name);
      if (await pathExists(path)) {
        throw new SafetensorsError(path, "already exists in the output folder");
      }
      written.push(path);
      const out = await Deno.open(path, { write: true, createNew: true });
      try {
        await writeAll(out, headerBytes(shard.entries, DEFAULT_METADATA));
        await crashPoint("shard-header-written");
        const appender = new BufferedAppender(out);
        for (const [i, t] of shard.tensors.entries()) {
          let data: Uint8Array;
          try {
            data = await t.read();
          } catch (e) {
            // llmc's own errors already say which file or tensor failed.
            if (e instanceof LlmcError) throw e;
            throw new SafetensorsError(
              path,
              `tensor '${t.name}': reading its bytes failed: ${(e as Error).message}`,
              { cause: e },
            );
          }
          const e = shard.entries[i];
          if (data.byteLength !== e.end - e.begin) {
            throw new SafetensorsError(
              path,
              `tensor '${t.name}': read ${data.byteLength} bytes, its dtype and shape need ` +
                `${e.end - e.begin}`,
            );
          }
          await appender.append(data);
        }
        await appender.flush();
        if (options.durable !== false) await out.syncData();
      } finally {
        out.close();
      }
      for (const e of shard.entries) setOwn(weightMap, e.name, name);
      totalSize += shard.bytes;
    }
    let indexFile: string | null = null;
    if (n > 1) {
      indexFile = joinPath(dir, SAFETENSORS_INDEX_NAME);
      written.push(indexFile);
      await writeIndex(indexFile, weightMap, totalSize);
    }
    return { files: written.filter((p) => p !== indexFile), totalSize, weightMap, indexFile };
  } catch (e) {
    for (const p of written) await removeIfPresent(p);
    // llmc's own errors (a tensor's `read` included) already name their file or tensor.
    if (e instanceof LlmcError) throw e;
    throw new SafetensorsError(dir, `writing the checkpoint failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Streams tensors into a sharded checkpoint with bounded memory. Each
 * tensor's bytes go straight to the current shard's spill file on disk; a
 * new shard starts when the next tensor would push a non-empty shard past
 * `maxShardBytes`. `finish()` then writes each shard file (header + data
 * copied in chunks) and, for more than one shard, the index.
 *
 * Output names follow transformers: `model.safetensors`, or
 * `model-00001-of-0000N.safetensors` plus `model.safetensors.index.json`.
 * Write into a temporary folder (see atomic_dir.ts) and rename it when done.
 *
 * @example
 * ```ts
 * import { ShardedSafetensorsWriter } from "./safetensors_write.ts";
 * const dir = await Deno.makeTempDir();
 * const w = new ShardedSafetensorsWriter(dir, { maxShardBytes: 8 });
 * await w.add("a", "U8", [8], new Uint8Array(8));
 * await w.add("b", "U8", [8], new Uint8Array(8));
 * const { files } = await w.finish(); // two shards and an index
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ShardedSafetensorsWriter {
  /** The folder the checkpoint is written into. */
  readonly dir: string;
  readonly #maxShardBytes: number;
  readonly #names = new Set<string>();
  readonly #shards: Shard[] = [];
  readonly #written: string[] = [];
  #spillFile: Deno.FsFile | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #state: "open" | "finishing" | "done" | "aborted" = "open";

  /**
   * @param dir an existing folder to write into
   * @param options the shard size bound
   */
  constructor(dir: string, options: ShardedWriterOptions = {}) {
    const max = options.maxShardBytes ?? 5e9;
    if (!(max > 0)) {
      throw new SafetensorsError(dir, `maxShardBytes must be positive, got ${max}`);
    }
    this.dir = dir;
    this.#maxShardBytes = max;
  }

  /**
   * Appends a tensor to the checkpoint. Its bytes are on disk when the
   * promise resolves, so `data` may be reused after that.
   *
   * @param name the tensor name (unique in the checkpoint)
   * @param dtype its dtype
   * @param shape its shape
   * @param data its little-endian bytes, numel × dtype size long
   * @throws {SafetensorsError} for a repeated name, an inconsistent tensor or an I/O failure
   * @example
   * ```ts ignore
   * await writer.add("model.norm.weight", "BF16", [4096], bytes);
   * ```
   */
  add(name: string, dtype: DType, shape: number[], data: Uint8Array): Promise<void> {
    return this.#exclusive(async () => {
      this.#assertOpen();
      checkTensorForWrite(this.dir, name, dtype, shape, data?.byteLength);
      if (this.#names.has(name)) {
        throw new SafetensorsError(this.dir, `tensor '${name}' was already added`);
      }
      let shard = this.#shards[this.#shards.length - 1];
      if (
        shard === undefined || startsNewShard(shard.bytes, data.byteLength, this.#maxShardBytes)
      ) {
        shard = await this.#newShard();
      }
      try {
        await writeAll(this.#spillFile!, data);
      } catch (e) {
        throw new SafetensorsError(
          shard.spill,
          `spilling '${name}' failed: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
      this.#names.add(name);
      shard.entries.push({
        name,
        dtype,
        shape: [...shape],
        begin: shard.bytes,
        end: shard.bytes + data.byteLength,
      });
      shard.bytes += data.byteLength;
    });
  }

  /**
   * Writes the shard files and, when there are several, the index; removes
   * the spill files.
   *
   * @returns the files written, the total tensor bytes and the weight map
   * @throws {SafetensorsError} on I/O failure (temporary files are removed)
   * @example
   * ```ts ignore
   * const { files, totalSize, weightMap } = await writer.finish();
   * ```
   */
  finish(): Promise<ShardedWriteResult> {
    return this.#exclusive(async () => {
      this.#assertOpen();
      this.#state = "finishing";
      try {
        return await this.#writeShards();
      } catch (e) {
        await this.#cleanup(true);
        this.#state = "aborted";
        if (e instanceof SafetensorsError) throw e;
        throw new SafetensorsError(
          this.dir,
          `finishing the checkpoint failed: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
    });
  }

  /**
   * Gives up: removes the spill files and any shard files written so far.
   *
   * @example
   * ```ts ignore
   * await writer.abort();
   * ```
   */
  abort(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#state === "done" || this.#state === "aborted") return;
      this.#state = "aborted";
      await this.#cleanup(true);
    });
  }

  async #writeShards(): Promise<ShardedWriteResult> {
    if (this.#shards.length === 0) await this.#newShard();
    this.#spillFile?.close();
    this.#spillFile = null;
    const n = this.#shards.length;
    const weightMap: Record<string, string> = {};
    const files: string[] = [];
    let totalSize = 0;
    for (let k = 0; k < n; k++) {
      const shard = this.#shards[k];
      const name = shardFileName(k, n);
      const path = joinPath(this.dir, name);
      if (await pathExists(path)) {
        throw new SafetensorsError(path, "already exists in the output folder");
      }
      this.#written.push(path);
      const out = await Deno.open(path, { write: true, createNew: true });
      try {
        await writeAll(out, headerBytes(shard.entries, DEFAULT_METADATA));
        await crashPoint("shard-header-written");
        await copySpill(shard.spill, out);
        await out.syncData();
      } finally {
        out.close();
      }
      await removeIfPresent(shard.spill);
      for (const e of shard.entries) setOwn(weightMap, e.name, name);
      totalSize += shard.bytes;
      files.push(path);
    }
    let indexFile: string | null = null;
    if (n > 1) {
      indexFile = joinPath(this.dir, SAFETENSORS_INDEX_NAME);
      this.#written.push(indexFile);
      await writeIndex(indexFile, weightMap, totalSize);
    }
    this.#state = "done";
    return { files, totalSize, weightMap, indexFile };
  }

  async #newShard(): Promise<Shard> {
    this.#spillFile?.close();
    this.#spillFile = null;
    const spill = joinPath(this.dir, `.llmc-shard-${this.#shards.length + 1}.spill-${Deno.pid}`);
    const shard: Shard = { spill, entries: [], bytes: 0 };
    this.#shards.push(shard);
    try {
      this.#spillFile = await Deno.open(spill, { write: true, create: true, truncate: true });
    } catch (e) {
      throw new SafetensorsError(spill, `cannot create spill file: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return shard;
  }

  async #cleanup(removeOutputs: boolean): Promise<void> {
    try {
      this.#spillFile?.close();
    } catch {
      // Already closed by a failed write; nothing left to release.
    }
    this.#spillFile = null;
    for (const s of this.#shards) await removeIfPresent(s.spill);
    if (removeOutputs) { for (const p of this.#written) await removeIfPresent(p); }
  }

  #assertOpen(): void {
    if (this.#state !== "open") {
      throw new SafetensorsError(
        this.dir,
        `the writer is ${this.#state}; no more tensors can be added`,
      );
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // One spill cursor and one shard list: operations run one at a time.
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }
}

const COPY_CHUNK = 16 << 20;

async function copySpill(spillPath: string, out: Deno.FsFile): Promise<void> {
  const src = await Deno.open(spillPath, { read: true });
  try {
    const buf = new Uint8Array(COPY_CHUNK);
    while (true) {
      const n = await src.read(buf);
      if (n === null) break;
      await writeAll(out, buf.subarray(0, n));
    }
  } finally {
    src.close();
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.byteLength) done += await file.write(data.subarray(done));
}
