/**
 * A lock on an output folder and everything beside it that a run writes
 * (`OUT.tmp-llmc`, `OUT.tmp-llmc-<pid>`, `OUT.old-llmc-<pid>`): the file
 * `OUT.llmc-lock`, holding who owns it.
 *
 * Why a lock file and not `flock`: the holder must be named in the refusal
 * (pid, host, start time), and the file must say so even to a reader on
 * another machine sharing the folder. The lock is taken atomically: the
 * record is written to a private file first and hard-linked to the lock's
 * name, which fails if the name exists, so a lock is never seen half-written.
 *
 * A lock whose holder is gone is stale and is taken over:
 *
 * - same host (same boot): the holder is alive only if `/proc/<pid>` exists
 *   and that process started at the recorded time (so a reused pid does not
 *   keep a dead run's lock alive);
 * - same host, another boot (`/proc/sys/kernel/random/boot_id` differs):
 *   stale, every process of that boot is gone;
 * - another host: llmc cannot see that machine's processes, so the lock is
 *   stale only when its holder has not refreshed it (the file's mtime; the
 *   sink refreshes it at each finished layer) for {@link FOREIGN_STALE_MS}.
 *
 * Taking over renames the stale file away first and checks that what was
 * renamed is the record judged stale, so two runs that find the same stale
 * lock cannot both win.
 *
 * @module
 */

import { AtomicDirError } from "./atomic_dir.ts";
import { removeIfPresent, splitPath } from "./_path.ts";

/** The suffix of an output folder's lock file. */
export const LOCK_SUFFIX = ".llmc-lock";

/** How long a lock written on another host stays valid without a refresh (24 h). */
export const FOREIGN_STALE_MS = 24 * 3600 * 1000;

/** Who holds a lock. */
export interface LockHolder {
  /** Process id on its host. */
  readonly pid: number;
  /** `Deno.hostname()` of the holder. */
  readonly host: string;
  /** When the holder took the lock (ISO 8601). */
  readonly started: string;
  /** The kernel's boot id of the holder's host, when known. */
  readonly bootId: string | null;
  /** The holder process's start time in clock ticks after boot (`/proc/<pid>/stat` field 22). */
  readonly startTicks: number | null;
}

/** The output is locked by a live run. */
export class OutputLockedError extends AtomicDirError {
  /** Who holds the lock. */
  readonly holder: LockHolder;

  /**
   * @param dir the output folder
   * @param lockPath the lock file
   * @param holder who holds it
   */
  constructor(dir: string, lockPath: string, holder: LockHolder) {
    const self = holder.pid === Deno.pid && holder.host === hostname() ? " (this process)" : "";
    super(
      dir,
      `is being written by another llmc run: pid ${holder.pid}${self} on host ${holder.host}, ` +
        `started ${holder.started} (lock file ${lockPath}). Wait for it to finish or choose ` +
        `another output folder; if that process is gone (on another host llmc cannot tell), ` +
        `delete the lock file`,
    );
    this.holder = holder;
  }
}

/** A held lock. */
export interface OutputLock {
  /** The lock file. */
  readonly path: string;
  /** This process's record in it. */
  readonly holder: LockHolder;
  /** Marks the lock as recently used (its mtime), so another host does not judge it stale. */
  refresh(): Promise<void>;
  /** Removes the lock file if it is still this lock's. Safe to call twice. */
  release(): Promise<void>;
}

// Permissions are queried first, so a library user without them gets no prompt.
function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

function hostname(): string {
  if (!granted({ name: "sys", kind: "hostname" })) return "unknown-host";
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
}

function readOrNull(path: string): string | null {
  if (!granted({ name: "read", path })) return null;
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return null;
  }
}

/** Field 22 of `/proc/<pid>/stat` (start time in ticks), or null when there is no such process. */
function processStartTicks(pid: number): number | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[19]);
  return Number.isFinite(ticks) ? ticks : null;
}

/**
 * This process's lock record.
 *
 * @returns pid, host, start time, boot id and start ticks
 * @example
 * ```ts
 * import { currentHolder } from "./output_lock.ts";
 * console.assert(currentHolder().pid === Deno.pid);
 * ```
 */
export function currentHolder(): LockHolder {
  return {
    pid: Deno.pid,
    host: hostname(),
    started: new Date().toISOString(),
    bootId: readOrNull("/proc/sys/kernel/random/boot_id"),
    startTicks: processStartTicks(Deno.pid),
  };
}

function parseHolder(text: string): LockHolder | null {
  try {
    const v = JSON.parse(text);
    if (
      typeof v === "object" && v !== null && Number.isSafeInteger(v.pid) &&
      typeof v.host === "string" && typeof v.started === "string"
    ) {
      return {
        pid: v.pid,
        host: v.host,
        started: v.started,
        bootId: typeof v.bootId === "string" ? v.bootId : null,
        startTicks: Number.isFinite(v.startTicks) ? v.startTicks : null,
      };
    }
  } catch { /* not a record */ }
  return null;
}

/** Locks held by this process, by lock path: a second open in the same process is refused too. */
const HELD = new Set<string>();

/**
 * Whether a lock record's holder is certainly gone.
 *
 * @param holder the record
 * @param mtimeMs when the lock file was last refreshed
 * @param lockPath the lock file (a lock this process holds is never stale)
 * @returns true when the lock may be taken over
 * @example
 * ```ts
 * import { currentHolder, isStale } from "./output_lock.ts";
 * console.assert(!isStale(currentHolder(), Date.now(), "/nonexistent.llmc-lock"));
 * ```
 */
export function isStale(holder: LockHolder, mtimeMs: number, lockPath: string): boolean {
  const me = currentHolder();
  if (holder.host !== me.host) return Date.now() - mtimeMs > FOREIGN_STALE_MS;
  if (holder.bootId !== null && me.bootId !== null && holder.bootId !== me.bootId) return true;
  if (holder.pid === Deno.pid && holder.startTicks === me.startTicks) {
    return !HELD.has(lockPath);
  }
  const ticks = processStartTicks(holder.pid);
  if (ticks === null) {
    // No /proc entry: dead on Linux. Without /proc at all, llmc cannot tell.
    return readOrNull("/proc/self/stat") !== null;
  }
  return holder.startTicks !== null && ticks !== holder.startTicks;
}

/**
 * Takes the lock of an output folder, or refuses at once naming the holder.
 * A stale lock (see the module doc) is taken over, with a warning.
 *
 * @param finalDir the output folder (need not exist; its parent is created)
 * @param onWarning receives a note when a stale lock is taken over
 * @returns the held lock
 * @throws {OutputLockedError} when a live run holds the lock
 * @throws {AtomicDirError} when the lock file cannot be written
 * @example
 * ```ts
 * import { acquireOutputLock } from "./output_lock.ts";
 * const parent = await Deno.makeTempDir();
 * const lock = await acquireOutputLock(`${parent}/out`);
 * await lock.release();
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function acquireOutputLock(
  finalDir: string,
  onWarning: (message: string) => void = (m) => console.warn(m),
): Promise<OutputLock> {
  const final = finalDir.length > 1 ? finalDir.replace(/\/+$/, "") : finalDir;
  const lockPath = final + LOCK_SUFFIX;
  const holder = currentHolder();
  const record = JSON.stringify(holder);
  const mine = `${lockPath}.new-${Deno.pid}`;
  try {
    await Deno.mkdir(splitPath(final)[0], { recursive: true });
    await Deno.writeTextFile(mine, record);
  } catch (e) {
    throw new AtomicDirError(final, `cannot write the lock file ${mine}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await Deno.link(mine, lockPath);
        HELD.add(lockPath);
        return heldLock(lockPath, holder, record);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) {
          // A file system without hard links: create the name exclusively instead
          // (a reader may then briefly see a half-written record, judged unreadable).
          try {
            await Deno.writeTextFile(lockPath, record, { createNew: true });
            HELD.add(lockPath);
            return heldLock(lockPath, holder, record);
          } catch (e2) {
            if (!(e2 instanceof Deno.errors.AlreadyExists)) {
              throw new AtomicDirError(final, `cannot create the lock file ${lockPath}: ${e2}`, {
                cause: e2,
              });
            }
          }
        }
      }
      const text = readOrNull(lockPath);
      if (text === null) continue; // released meanwhile: try again
      let mtime = Date.now();
      try {
        mtime = (await Deno.stat(lockPath)).mtime?.getTime() ?? mtime;
      } catch { /* released meanwhile */ }
      const other = parseHolder(text);
      if (other !== null && !isStale(other, mtime, lockPath)) {
        throw new OutputLockedError(final, lockPath, other);
      }
      // An unreadable record is stale once it is a few seconds old (llmc writes it
      // whole, but on a file system without hard links a reader can catch it half-written).
      if (other === null && Date.now() - mtime < 5_000) {
        throw new AtomicDirError(
          final,
          `its lock file ${lockPath} is being written by another run; try again in a moment`,
        );
      }
      const aside = `${lockPath}.stale-${Deno.pid}`;
      try {
        await Deno.rename(lockPath, aside);
      } catch {
        continue; // someone else moved it first
      }
      if (readOrNull(aside) !== text) {
        // Another run took the stale lock over between our read and our rename: give it back.
        await Deno.link(aside, lockPath).catch(() => {});
        await removeIfPresent(aside);
        continue;
      }
      await removeIfPresent(aside);
      onWarning(
        `${final}: took over the lock of a run that is gone (${
          other === null
            ? "unreadable lock file"
            : `pid ${other.pid} on host ${other.host}, started ${other.started}`
        })`,
      );
    }
    throw new AtomicDirError(final, `could not take the lock ${lockPath} (it kept changing)`);
  } finally {
    await removeIfPresent(mine);
  }
}

function heldLock(path: string, holder: LockHolder, record: string): OutputLock {
  let released = false;
  return {
    path,
    holder,
    async refresh() {
      if (released) return;
      const now = new Date();
      await Deno.utime(path, now, now).catch(() => {});
    },
    async release() {
      if (released) return;
      released = true;
      HELD.delete(path);
      // Only our own record is removed: never a lock another run took over.
      if (readOrNull(path) === record) await removeIfPresent(path);
    },
  };
}
