/**
 * An output folder that appears complete or not at all: everything is
 * written into a sibling temporary folder, renamed into place on commit.
 *
 * @module
 */

import { crashPoint } from "../crash_points.ts";
import { LlmcError } from "../errors.ts";
import { joinPath, pathExists, removeIfPresent, splitPath } from "./_path.ts";

/** The output folder cannot be prepared, committed or cleaned up. */
export class AtomicDirError extends LlmcError {
  /** The final folder the error is about. */
  readonly dir: string;

  /**
   * @param dir the final folder
   * @param message what was wrong and what was expected
   * @param options the underlying cause, if any
   */
  constructor(dir: string, message: string, options?: ErrorOptions) {
    super(`${dir}: ${message}`, options);
    this.dir = dir;
  }
}

/** A temporary output folder and the two ways to end it. */
export interface AtomicOutputDir {
  /** Where to write: `finalDir + ".tmp-llmc-<pid>"`. */
  tmpDir: string;
  /** Renames the temporary folder to the final one (replacing it when allowed). */
  commit(): Promise<void>;
  /** Removes the temporary folder and everything in it. */
  abort(): Promise<void>;
}

/** The marker between a final folder's name and the pid in its temporary sibling. */
export const TMP_DIR_MARKER = ".tmp-llmc-";

/**
 * Prepares an atomic output folder.
 *
 * @param finalDir the folder the output should end up as
 * @param options `overwrite`: replace an existing `finalDir` on commit
 * @returns the temporary folder (created, empty) with `commit` and `abort`
 * @throws {AtomicDirError} when `finalDir` exists and `overwrite` is not set
 *   (before anything is written), or the temporary folder cannot be made
 * @example
 * ```ts
 * import { atomicOutputDir } from "./atomic_dir.ts";
 * const parent = await Deno.makeTempDir();
 * const out = await atomicOutputDir(`${parent}/model-w4a16`, { overwrite: false });
 * await Deno.writeTextFile(`${out.tmpDir}/config.json`, "{}");
 * await out.commit(); // now ${parent}/model-w4a16/config.json exists
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function atomicOutputDir(
  finalDir: string,
  options: { overwrite?: boolean } = {},
): Promise<AtomicOutputDir> {
  const overwrite = options.overwrite ?? false;
  const final = finalDir.length > 1 ? finalDir.replace(/\/+$/, "") : finalDir;
  if (!overwrite && await pathExists(final)) {
    throw new AtomicDirError(final, "already exists; pass overwrite to replace it");
  }
  const tmpDir = `${final}${TMP_DIR_MARKER}${Deno.pid}`;
  try {
    // The same name can only be left over from a dead process with our pid.
    await removeIfPresent(tmpDir);
    await Deno.mkdir(tmpDir, { recursive: true });
  } catch (e) {
    throw new AtomicDirError(final, `cannot create ${tmpDir}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let ended = false;
  const end = (what: string) => {
    if (ended) throw new AtomicDirError(final, `${what} after the output was already ended`);
    ended = true;
  };
  return {
    tmpDir,
    async commit() {
      end("commit");
      await crashPoint("commit-start");
      const exists = await pathExists(final);
      if (exists && !overwrite) {
        throw new AtomicDirError(final, `appeared while writing; the output stays in ${tmpDir}`);
      }
      if (!exists) {
        await renameOrFail(tmpDir, final, final);
        return;
      }
      // Move the old folder aside first: a rename cannot replace a non-empty folder.
      // A kill between the two renames leaves OUT missing and OUT.old-llmc-<pid>
      // holding the previous output; removeOrphans puts it back.
      const old = `${final}${OLD_DIR_MARKER}${Deno.pid}`;
      await removeIfPresent(old);
      await renameOrFail(final, old, final);
      await crashPoint("commit-old-moved");
      try {
        await Deno.rename(tmpDir, final);
      } catch (e) {
        await Deno.rename(old, final).catch(() => {});
        throw new AtomicDirError(
          final,
          `cannot move ${tmpDir} into place: ${(e as Error).message}`,
          { cause: e },
        );
      }
      await crashPoint("commit-renamed");
      await removeIfPresent(old);
    },
    async abort() {
      if (ended) return;
      ended = true;
      await removeIfPresent(tmpDir);
    },
  };
}

async function renameOrFail(from: string, to: string, final: string): Promise<void> {
  try {
    await Deno.rename(from, to);
  } catch (e) {
    throw new AtomicDirError(final, `cannot rename ${from} to ${to}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Finds temporary siblings of an output folder left by earlier runs
 * (`finalDir.tmp-llmc-<pid>`), for example to resume or clean up.
 *
 * @param finalDir the output folder
 * @returns their paths, sorted; empty when the parent folder does not exist
 * @example
 * ```ts
 * import { findStaleTmpDirs } from "./atomic_dir.ts";
 * const parent = await Deno.makeTempDir();
 * await Deno.mkdir(`${parent}/out.tmp-llmc-12345`);
 * await findStaleTmpDirs(`${parent}/out`); // [`${parent}/out.tmp-llmc-12345`]
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function findStaleTmpDirs(finalDir: string): Promise<string[]> {
  const [parent, base] = splitPath(finalDir);
  const prefix = base + TMP_DIR_MARKER;
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      if (!entry.isDirectory || !entry.name.startsWith(prefix)) continue;
      if (/^\d+$/.test(entry.name.slice(prefix.length))) found.push(joinPath(parent, entry.name));
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return found.sort();
}

/** The marker between a final folder's name and the pid in the moved-aside old output. */
export const OLD_DIR_MARKER = ".old-llmc-";

/**
 * The marker of a work folder moved aside just before its output is
 * committed (`OUT.done-llmc-<pid>`): whether that commit happened is then
 * told by whether `OUT.tmp-llmc-<pid>` still exists.
 */
export const DONE_DIR_MARKER = ".done-llmc-";

/**
 * Removes what dead runs left beside an output folder; call it only while
 * holding the output's lock (`acquireOutputLock`), which proves that no live
 * run owns these folders:
 *
 * - `OUT.tmp-llmc-<pid>` (a temporary output, with any `.llmc-shard-*.spill-<pid>`
 *   inside): removed; it was never committed, so it is not the output;
 * - `OUT.old-llmc-<pid>` when `OUT` exists: the previous output of a commit
 *   that finished its renames; removed;
 * - `OUT.old-llmc-<pid>` when `OUT` is missing: a commit was killed between
 *   its two renames; the previous output is renamed back to `OUT`, as if the
 *   dead run had never started;
 * - `OUT.done-llmc-<pid>` (a work folder moved aside before the commit): when
 *   `OUT.tmp-llmc-<pid>` is gone the commit happened and it is removed;
 *   otherwise it is moved back to `workDir` (when given), to be resumed.
 *
 * @param finalDir the output folder
 * @param onWarning receives one note per folder removed or restored
 * @param workDir where a work folder moved aside before an unfinished commit goes back to
 * @returns the paths removed or restored
 * @example
 * ```ts
 * import { removeOrphans } from "./atomic_dir.ts";
 * const parent = await Deno.makeTempDir();
 * await Deno.mkdir(`${parent}/out.tmp-llmc-99999999`);
 * await removeOrphans(`${parent}/out`, () => {}); // [`${parent}/out.tmp-llmc-99999999`]
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function removeOrphans(
  finalDir: string,
  onWarning: (message: string) => void,
  workDir?: string,
): Promise<string[]> {
  const final = finalDir.length > 1 ? finalDir.replace(/\/+$/, "") : finalDir;
  const [parent, base] = splitPath(final);
  const tmp: string[] = [];
  const old: string[] = [];
  const doneDirs: string[] = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      const kinds = [[TMP_DIR_MARKER, tmp], [OLD_DIR_MARKER, old], [DONE_DIR_MARKER, doneDirs]];
      for (const [marker, list] of kinds as Array<[string, string[]]>) {
        const prefix = base + marker;
        if (entry.name.startsWith(prefix) && /^\d+$/.test(entry.name.slice(prefix.length))) {
          list.push(joinPath(parent, entry.name));
        }
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const done: string[] = [];
  for (const p of doneDirs.sort()) {
    const pid = p.slice(p.lastIndexOf(DONE_DIR_MARKER) + DONE_DIR_MARKER.length);
    const committed = !(await pathExists(`${final}${TMP_DIR_MARKER}${pid}`));
    if (!committed && workDir !== undefined && !(await pathExists(workDir))) {
      await renameOrFail(p, workDir, final);
      onWarning(`${final}: moved ${p} back to ${workDir} (its run died before committing)`);
    } else {
      await removeIfPresent(p);
      onWarning(`${final}: removed ${p}, the work folder of a run that is gone`);
    }
    done.push(p);
  }
  for (const p of old.sort()) {
    if (!(await pathExists(final))) {
      await renameOrFail(p, final, final);
      onWarning(
        `${final}: restored the previous output from ${p} (a run was killed while replacing it)`,
      );
    } else {
      await removeIfPresent(p);
      onWarning(`${final}: removed ${p}, the previous output left by a killed run`);
    }
    done.push(p);
  }
  for (const p of tmp.sort()) {
    await removeIfPresent(p);
    onWarning(`${final}: removed ${p}, the unfinished output of a run that is gone`);
    done.push(p);
  }
  return done;
}

/**
 * Refuses an output folder that is the input folder, lies inside it, or
 * contains it: with `overwrite`, committing would otherwise move the input
 * aside and delete it, and llmc never modifies its input.
 *
 * @param inputDir the folder read from (must exist)
 * @param outputDir the folder to be written (may not exist yet)
 * @throws {AtomicDirError} naming both folders when they overlap
 * @example
 * ```ts
 * import { assertOutputOutsideInput } from "./atomic_dir.ts";
 * const input = await Deno.makeTempDir();
 * await assertOutputOutsideInput(input, `${input}-out`); // fine
 * await assertOutputOutsideInput(input, input).catch((e) => console.log(e.message));
 * ```
 */
export async function assertOutputOutsideInput(
  inputDir: string,
  outputDir: string,
): Promise<void> {
  const input = await Deno.realPath(inputDir);
  const output = await resolveMaybeMissing(outputDir);
  const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith("/") ? b : b + "/");
  if (within(output, input) || within(input, output)) {
    throw new AtomicDirError(
      outputDir,
      `the output folder overlaps the input model folder ${inputDir}; ` +
        `choose an output outside it (llmc never writes into or replaces its input)`,
    );
  }
}

/** The canonical absolute path of `p`, resolving the deepest part that exists. */
async function resolveMaybeMissing(p: string): Promise<string> {
  const abs = p.startsWith("/") ? p : joinPath(Deno.cwd(), p);
  const tail: string[] = [];
  let head = abs.replace(/\/+$/, "") || "/";
  while (!(await pathExists(head))) {
    const [parent, base] = splitPath(head);
    tail.unshift(base);
    if (parent === head) break;
    head = parent;
  }
  const real = await Deno.realPath(head);
  return tail.length === 0 ? real : joinPath(real, ...tail);
}
