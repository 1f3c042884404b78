/**
 * The hidden states between decoder layers (upstream's intermediates cache,
 * §4.11): one array per calibration batch, held in host memory while a
 * shared byte budget allows and spilled to files beyond it, so a run with
 * many long samples does not exhaust RAM. The GPU only ever holds the batch
 * in flight.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/** A spill file or a boundary record that cannot be read back. */
export class ActivationCacheError extends LlmcError {}

/**
 * How many bytes of activations may stay in host memory, shared by every
 * cache of a run (a layer's inputs and outputs coexist).
 *
 * @example
 * ```ts
 * import { MemoryBudget } from "./activation_cache.ts";
 * const b = new MemoryBudget(100);
 * b.take(60); // true
 * b.take(60); // false
 * ```
 */
export class MemoryBudget {
  #used = 0;

  /** @param limit bytes allowed in memory (Infinity for no bound) */
  constructor(readonly limit: number) {}

  /** Bytes currently held. */
  get used(): number {
    return this.#used;
  }

  /**
   * Reserves `bytes` if they fit.
   *
   * @param bytes the size
   * @returns whether they were reserved
   * @example
   * ```ts
   * import { MemoryBudget } from "./activation_cache.ts";
   * new MemoryBudget(8).take(4); // true
   * ```
   */
  take(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  /**
   * Returns reserved bytes.
   *
   * @param bytes the size
   * @example
   * ```ts
   * import { MemoryBudget } from "./activation_cache.ts";
   * const b = new MemoryBudget(8);
   * b.take(4);
   * b.give(4);
   * b.used; // 0
   * ```
   */
  give(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

type Entry =
  | { readonly where: "memory"; readonly data: Float32Array }
  | { readonly where: "disk"; readonly path: string; readonly length: number };

const BOUNDARY_FORMAT = "llmc-activations/1";

/**
 * Hidden states of every calibration batch at one layer boundary.
 *
 * @example
 * ```ts
 * import { ActivationCache, MemoryBudget } from "./activation_cache.ts";
 * const dir = await Deno.makeTempDir();
 * const cache = new ActivationCache(new MemoryBudget(4), dir, "t");
 * await cache.put(0, new Float32Array([1])); // fits in 4 bytes
 * await cache.put(1, new Float32Array([2])); // spilled to a file
 * (await cache.get(1))[0]; // 2
 * cache.bytesOnDisk; // 4
 * await cache.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ActivationCache {
  readonly #entries = new Map<number, Entry>();

  /**
   * @param budget the run's shared memory budget
   * @param spillDir an existing folder for spill files
   * @param tag distinguishes this cache's files from others in `spillDir`
   */
  constructor(
    private readonly budget: MemoryBudget,
    private readonly spillDir: string,
    private readonly tag: string,
  ) {}

  /** Number of batches held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held in memory. */
  get bytesInMemory(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.where === "memory") n += e.data.byteLength;
    return n;
  }

  /** Bytes spilled to disk. */
  get bytesOnDisk(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.where === "disk") n += e.length * 4;
    return n;
  }

  /**
   * Stores batch `i`'s hidden state (the cache keeps the array).
   *
   * @param i the batch index
   * @param data its hidden state
   * @returns resolves once stored (written, when spilled)
   * @example
   * ```ts ignore
   * await cache.put(0, await out.readF32());
   * ```
   */
  async put(i: number, data: Float32Array): Promise<void> {
    await this.#drop(i);
    if (this.budget.take(data.byteLength)) {
      this.#entries.set(i, { where: "memory", data });
      return;
    }
    const path = `${this.spillDir}/${this.tag}-${i}.f32`;
    await Deno.writeFile(path, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.#entries.set(i, { where: "disk", path, length: data.length });
  }

  /**
   * Batch `i`'s hidden state.
   *
   * @param i the batch index
   * @returns the values (do not modify)
   * @throws {ActivationCacheError} when batch `i` was never stored or its file is damaged
   * @example
   * ```ts ignore
   * const x = await cache.get(0);
   * ```
   */
  async get(i: number): Promise<Float32Array> {
    const e = this.#entries.get(i);
    if (e === undefined) throw new ActivationCacheError(`activation batch ${i} is not cached`);
    if (e.where === "memory") return e.data;
    const bytes = await Deno.readFile(e.path);
    if (bytes.byteLength !== e.length * 4) {
      throw new ActivationCacheError(
        `${e.path}: spill file holds ${bytes.byteLength} bytes, expected ${e.length * 4}`,
      );
    }
    return new Float32Array(bytes.buffer, bytes.byteOffset, e.length);
  }

  /**
   * Serializes every batch (for the sink's resume boundary).
   *
   * @returns a self-describing byte record
   * @example
   * ```ts ignore
   * await sink.saveBoundary(k, await cache.serialize());
   * ```
   */
  async serialize(): Promise<Uint8Array> {
    const parts = await this.serializeParts();
    const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }

  /**
   * {@link serialize}'s record as consecutive parts: the header, then each
   * batch's bytes as a view of the array the cache holds (no copy; a
   * spilled batch is read back), so writing the record costs no second
   * copy of the hidden states.
   *
   * @returns the parts, whose concatenation is the record
   * @example
   * ```ts ignore
   * await sink.saveBoundary(k, await cache.serializeParts());
   * ```
   */
  async serializeParts(): Promise<Uint8Array[]> {
    const keys = [...this.#entries.keys()].sort((a, b) => a - b);
    const arrays: Float32Array[] = [];
    for (const k of keys) arrays.push(await this.get(k));
    const text = new TextEncoder().encode(JSON.stringify({
      format: BOUNDARY_FORMAT,
      entries: keys.map((k, j) => ({ index: k, length: arrays[j].length })),
    }));
    const pad = (4 - ((4 + text.length) % 4)) % 4;
    const header = new Uint8Array(4 + text.length + pad);
    new DataView(header.buffer).setUint32(0, text.length + pad, true);
    header.set(text, 4);
    header.fill(0x20, 4 + text.length);
    return [header, ...arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength))];
  }

  /**
   * Fills this (empty) cache from {@link serialize}'s record.
   *
   * @param bytes the record
   * @param expected the batch lengths (floats) the run expects, by index
   * @returns resolves when stored
   * @throws {ActivationCacheError} when the record is damaged or does not fit the batches
   * @example
   * ```ts ignore
   * await cache.restore(await sink.loadBoundary(k), batches.map((b) => b.ids.length * hidden));
   * ```
   */
  async restore(bytes: Uint8Array, expected: readonly number[]): Promise<void> {
    const fail = (why: string) => new ActivationCacheError(`resume boundary: ${why}`);
    if (bytes.byteLength < 4) throw fail("too short");
    const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    let header: { format?: unknown; entries?: { index: number; length: number }[] };
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerLen)));
    } catch {
      throw fail("unreadable header");
    }
    const entries = header.entries;
    if (header.format !== BOUNDARY_FORMAT || !Array.isArray(entries)) throw fail("unknown format");
    if (entries.length !== expected.length) {
      throw fail(`${entries.length} batches saved, the run has ${expected.length}`);
    }
    let end = 4 + headerLen;
    for (const [j, e] of entries.entries()) {
      if (e.index !== j || e.length !== expected[j]) {
        throw fail(`batch ${j} does not match this run's calibration data`);
      }
      end += e.length * 4;
    }
    if (end !== bytes.byteLength) {
      throw fail(`${bytes.byteLength} bytes, the header implies ${end}`);
    }
    let at = 4 + headerLen;
    for (const [j, e] of entries.entries()) {
      await this.put(j, new Float32Array(bytes.slice(at, at + e.length * 4).buffer));
      at += e.length * 4;
    }
  }

  /**
   * Forgets every batch, deleting spill files and returning the budget.
   *
   * @returns resolves when the files are gone
   * @example
   * ```ts ignore
   * await cache.dispose();
   * ```
   */
  async dispose(): Promise<void> {
    for (const i of [...this.#entries.keys()]) await this.#drop(i);
  }

  async #drop(i: number): Promise<void> {
    const e = this.#entries.get(i);
    if (e === undefined) return;
    this.#entries.delete(i);
    if (e.where === "memory") this.budget.give(e.data.byteLength);
    else await Deno.remove(e.path).catch(() => {});
  }
}
