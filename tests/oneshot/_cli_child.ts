/**
 * Runs `llmc` CLI commands as real child processes for the lock and
 * crash-injection tests: stderr is read line by line, so a test can wait for
 * a line (e.g. the `paused` line of `LLMC_PAUSE_AT`) before acting.
 */

const REPO_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** A running `llmc` child. */
export interface LlmcChild {
  readonly pid: number;
  /** Resolves with the first stderr line matching `pattern`, or null if the child ends first. */
  waitForLine(pattern: RegExp): Promise<string | null>;
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
  /** Exit code, signal and the whole stderr. */
  done(): Promise<{ code: number; signal: Deno.Signal | null; stderr: string }>;
}

/**
 * Starts `deno run -A src/cli/main.ts <args>` with extra environment.
 *
 * @param args the CLI arguments
 * @param env extra environment variables (e.g. `LLMC_CRASH_AT`)
 * @returns the child
 */
export function spawnLlmc(args: string[], env: Record<string, string> = {}): LlmcChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/cli/main.ts", ...args],
    cwd: REPO_ROOT,
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (l: string | null) => void }> = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of child.stderr) {
      pending += decoder.decode(chunk, { stream: true });
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i].pattern.test(line)) {
            waiters[i].resolve(line);
            waiters.splice(i, 1);
          }
        }
      }
    }
    if (pending) lines.push(pending);
    for (const w of waiters.splice(0)) w.resolve(null);
  })();
  return {
    pid: child.pid,
    waitForLine(pattern) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
    kill(signal) {
      child.kill(signal);
    },
    async done() {
      const status = await child.status;
      await reading;
      return { code: status.code, signal: status.signal, stderr: lines.join("\n") };
    },
  };
}

/**
 * Asserts two folders hold the same file names with the same bytes.
 *
 * @param a one folder
 * @param b the other
 * @returns a description of the first difference, or null when identical
 */
export async function folderDifference(a: string, b: string): Promise<string | null> {
  const names = (d: string) => [...Deno.readDirSync(d)].map((e) => e.name).sort();
  const na = names(a);
  const nb = names(b);
  if (na.join("\n") !== nb.join("\n")) return `files differ: [${na}] vs [${nb}]`;
  for (const n of na) {
    const x = await Deno.readFile(`${a}/${n}`);
    const y = await Deno.readFile(`${b}/${n}`);
    if (x.length !== y.length || !x.every((v, i) => v === y[i])) return `${n} differs`;
  }
  return null;
}

/**
 * The names in `dir` that start with `base` (the output and everything a run
 * writes beside it).
 *
 * @param dir the parent folder
 * @param base the output folder's name
 * @returns sorted names
 */
export function besideOutput(dir: string, base: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(base)).sort();
}
