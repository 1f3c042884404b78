/**
 * The sink's work-folder bookkeeping: `progress.json` records which layers
 * and tensor groups are already on disk, the latest saved hidden-state
 * boundary, and a hash of the job's options so a resumed run can prove it is
 * the same job.
 *
 * @module
 */

import { CheckpointSinkError } from "./sink_error.ts";

/** The `format` string of progress.json; bump when its layout changes. */
export const PROGRESS_FORMAT = "llmc-checkpoint-progress/1";

/** What progress.json holds. */
export interface Progress {
  readonly format: typeof PROGRESS_FORMAT;
  /** SHA-256 (hex) of the job's options. */
  readonly optionsHash: string;
  /** Finished decoder layers: index → file name inside the work folder. */
  readonly layers: Readonly<Record<string, string>>;
  /** Finished non-layer tensor groups: key → file name inside the work folder. */
  readonly groups: Readonly<Record<string, string>>;
  /** The latest hidden-state boundary saved, or null. */
  readonly boundary: { readonly layer: number; readonly file: string } | null;
}

/**
 * A fresh progress record.
 *
 * @param optionsHash the job's options hash
 * @returns progress with nothing done
 * @example
 * ```ts
 * import { emptyProgress } from "./_progress.ts";
 * emptyProgress("ab").layers; // {}
 * ```
 */
export function emptyProgress(optionsHash: string): Progress {
  return { format: PROGRESS_FORMAT, optionsHash, layers: {}, groups: {}, boundary: null };
}

/**
 * Reads and checks progress.json.
 *
 * @param path the file
 * @returns the record
 * @throws {CheckpointSinkError} when it is unreadable or not a progress record
 * @example
 * ```ts ignore
 * const p = await readProgress("out.tmp-llmc/progress.json");
 * ```
 */
export async function readProgress(path: string): Promise<Progress> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new CheckpointSinkError(
      path,
      `cannot read the progress record: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const p = raw as Partial<Progress> | null;
  const isMap = (v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.values(v).every((f) => typeof f === "string" && safeName(f));
  const b = p?.boundary;
  const boundaryOk = b === null ||
    (typeof b === "object" && Number.isSafeInteger(b?.layer) && typeof b?.file === "string" &&
      safeName(b.file));
  if (
    p === null || typeof p !== "object" || p.format !== PROGRESS_FORMAT ||
    typeof p.optionsHash !== "string" || !isMap(p.layers) || !isMap(p.groups) || !boundaryOk
  ) {
    throw new CheckpointSinkError(
      path,
      `is not a ${PROGRESS_FORMAT} record; remove the work folder or run without resume`,
    );
  }
  for (const k of Object.keys(p.layers!)) {
    if (!/^(0|[1-9]\d*)$/.test(k)) {
      throw new CheckpointSinkError(path, `layer key '${k}' is not a layer index`);
    }
  }
  return p as Progress;
}

/**
 * Writes progress.json atomically (temporary file, fsync, rename), so a crash
 * leaves either the old record or the new one.
 *
 * @param path the file
 * @param progress the record
 * @example
 * ```ts ignore
 * await writeProgress("out.tmp-llmc/progress.json", progress);
 * ```
 */
export async function writeProgress(path: string, progress: Progress): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(progress, null, 2) + "\n"));
}

/**
 * Writes bytes to a file atomically: temporary sibling, fsync, rename.
 *
 * @param path the file
 * @param bytes its content, or consecutive parts of it
 * @example
 * ```ts ignore
 * await writeFileAtomic("out.tmp-llmc/boundary/after-layer-00003.bin", bytes);
 * ```
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array | readonly Uint8Array[],
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      for (const part of bytes instanceof Uint8Array ? [bytes] : bytes) {
        let done = 0;
        while (done < part.byteLength) done += await f.write(part.subarray(done));
      }
      await f.syncData();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new CheckpointSinkError(path, `write failed: ${(e as Error).message}`, { cause: e });
  }
}

// Work files are plain names or one sub-folder deep; never a path out of the folder.
function safeName(f: string): boolean {
  return /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)?$/.test(f) && !f.split("/").includes("..");
}
