/**
 * Downloads one file into `blobs/<etag>`: resumable through
 * `blobs/<etag>.incomplete` and HTTP `Range`, verified against the size and
 * hash the Hub reported, renamed into place only when complete and correct.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { HubChecksumError, HubError } from "./hub_errors.ts";
import { describeRepo } from "./hub_id.ts";
import type { HubRepo } from "./hub_id.ts";
import type { HubSettings } from "./hub_settings.ts";
import { HubConnectionError, hubFetch, hubHeaders, throwForStatus } from "./_hub_http.ts";

/** Tries per file: a dropped connection resumes from the bytes already on disk. */
const ATTEMPTS = 4;

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

/** What a blob must be: its size and the etag that names it. */
export interface BlobExpectation {
  /** The file's path in the repository, for messages. */
  readonly file: string;
  /** The normalized etag: a sha256 (LFS), a git blob sha1, or something else (not checked). */
  readonly etag: string;
  /** The size in bytes, when the Hub said. */
  readonly size: number | null;
}

/**
 * Downloads `url` into `blob` (via `blob.incomplete`), resuming a partial
 * file and retrying dropped connections, then checks size and hash.
 *
 * @param settings token
 * @param repo the repository, for messages
 * @param url where the bytes are
 * @param blob the final blob path
 * @param want the expected size and etag
 * @throws {HubChecksumError} when size or hash differ (the partial file is deleted)
 * @throws {HubError} when every attempt failed
 */
export async function downloadBlob(
  settings: HubSettings,
  repo: HubRepo,
  url: string,
  blob: string,
  want: BlobExpectation,
): Promise<void> {
  const incomplete = `${blob}.incomplete`;
  let lastError: unknown = null;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    let have = await fileSize(incomplete);
    if (want.size !== null && have > want.size) {
      await Deno.truncate(incomplete, 0);
      have = 0;
    }
    if (want.size !== null && have === want.size) break;
    const headers = hubHeaders(settings, have > 0 ? { Range: `bytes=${have}-` } : {});
    let res: Response;
    try {
      res = await hubFetch(url, { headers });
    } catch (e) {
      if (!(e instanceof HubConnectionError)) throw e;
      lastError = e;
      continue;
    }
    if (res.status === 416) {
      // Our partial file is not a prefix the server recognizes: start over.
      await res.body?.cancel();
      await Deno.truncate(incomplete, 0).catch(() => {});
      lastError = new HubError(`${want.file}: the server refused the range bytes=${have}-`);
      continue;
    }
    await throwForStatus(res, repo, settings, want.file);
    // A 200 answer to a range request is the whole file: the partial one is discarded.
    const append = res.status === 206 && rangeStart(res) === have;
    if (res.status === 206 && !append) {
      await res.body?.cancel();
      await Deno.truncate(incomplete, 0).catch(() => {});
      lastError = new HubError(
        `${want.file}: the server answered a range other than bytes=${have}-`,
      );
      continue;
    }
    const out = await Deno.open(incomplete, {
      write: true,
      create: true,
      append,
      truncate: !append,
    });
    try {
      for await (const chunk of res.body ?? new ReadableStream<Uint8Array>()) {
        let off = 0;
        while (off < chunk.length) off += await out.write(chunk.subarray(off));
      }
      lastError = null;
    } catch (e) {
      // A dropped connection: keep what arrived and resume from there.
      lastError = e;
      continue;
    } finally {
      out.close();
    }
    if (want.size === null || (await fileSize(incomplete)) >= want.size) break;
    lastError = new HubError(`${want.file}: the connection ended early`);
  }
  const where = `${describeRepo(repo)}: ${want.file}`;
  if (lastError !== null) {
    throw new HubError(
      `${where}: download failed after ${ATTEMPTS} attempts (${
        (lastError as Error).message
      }); run again to resume from ${incomplete}`,
      { cause: lastError },
    );
  }
  const got = await fileSize(incomplete);
  if (want.size !== null && got !== want.size) {
    await Deno.remove(incomplete).catch(() => {});
    throw new HubChecksumError(
      `${where}: downloaded ${got} bytes, but the Hub reported ${want.size}; the file was discarded`,
    );
  }
  const check = await verifyEtag(incomplete, want.etag, got);
  if (check !== null) {
    await Deno.remove(incomplete).catch(() => {});
    throw new HubChecksumError(
      `${where}: ${check.kind} of the downloaded file is ${check.actual}, but the Hub reported ` +
        `${want.etag}; the file was discarded`,
    );
  }
  await Deno.rename(incomplete, blob);
}

function rangeStart(res: Response): number | null {
  const m = /^bytes (\d+)-/.exec(res.headers.get("Content-Range") ?? "");
  return m === null ? null : Number(m[1]);
}

/**
 * Checks a file against its etag: a 64-hex etag is the sha256 of the
 * content (LFS), a 40-hex one the git blob sha1 (`sha1("blob <size>\0" + content)`);
 * other etags cannot be checked.
 *
 * @returns null when it matches (or cannot be checked), else what was computed
 */
async function verifyEtag(
  path: string,
  etag: string,
  size: number,
): Promise<{ kind: string; actual: string } | null> {
  const sha256 = /^[0-9a-f]{64}$/.test(etag);
  const gitSha1 = /^[0-9a-f]{40}$/.test(etag);
  if (!sha256 && !gitSha1) return null;
  const hash = createHash(sha256 ? "sha256" : "sha1");
  if (gitSha1) hash.update(`blob ${size}\0`);
  // The readable stream closes the file when it ends.
  const f = await Deno.open(path, { read: true });
  for await (const chunk of f.readable) hash.update(chunk);
  const actual = hash.digest("hex");
  return actual === etag ? null : { kind: sha256 ? "the sha256" : "the git blob sha1", actual };
}
