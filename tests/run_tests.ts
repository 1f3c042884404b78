/**
 * The project's test runner: `deno task test [filter...]`.
 *
 * Each test file runs in its own `deno test` child process and is judged by
 * the results that process reports, not only by its exit code. Why: a Deno
 * process that used WebGPU on Mesa sometimes aborts while tearing down
 * (rc 134, "double free or corruption") after every test has already passed
 * and the summary line has been printed. The rules below keep CI from being
 * flaky without hiding a real failure:
 *
 * - summary printed with 0 failed and the process exited 0: pass;
 * - summary printed with 0 failed, then the process died of SIGABRT (rc 134)
 *   or SIGSEGV (rc 139) while exiting: pass, and the crash is reported in the
 *   output so nobody mistakes it;
 * - summary printed with failures, or any other non-zero exit after a
 *   summary: fail;
 * - a summary that reports no test at all: fail (a file that tests nothing
 *   is a mistake, not a pass);
 * - no summary, and the process died of the same glibc heap abort with no
 *   test reported as failed: the file is run again, up to three attempts, and
 *   fails if no attempt completes; every rerun is reported in the file's line
 *   and counted in the closing lines;
 * - no summary for any other reason (a crash, a compile error): fail;
 * - a file that runs past the per-file timeout fails, and everything it
 *   started (its process tree and session) is killed with it.
 *
 * Besides the test files, one type check of everything (mod.ts, src/, bench/,
 * recipes/ with their JSDoc examples, and tests/) counts as a test too. The
 * files then run with `--no-check`: checking each file's module graph again
 * in each child would repeat the same work 120 times on a cold cache.
 *
 * The pipeline-level files (SECOND_ENGINE_PATHS) run twice: on the engine
 * "auto" picks, and with LLMC_ENGINE set to the other one, so that oneshot,
 * the pipelines and the checkpoints they write are tested on both engines
 * (`--one-engine` skips the second run). Their second run is named
 * `file [LLMC_ENGINE=webgpu]` in the output.
 *
 * Files run `--jobs` at a time (default 2), the slowest first: the previous
 * full run's durations are kept in `.cache/test_times.json`; without them,
 * tests/quality runs first.
 *
 * The last line is `N passed, N failed` (", N skipped" for ignored tests).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ENGINE_ENV } from "../src/engine/choose.ts";
import type { EngineKind } from "../src/engine/engine.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DENO = Deno.execPath();
const MAX_ATTEMPTS = 3;

interface FileResult {
  file: string;
  /** Attempts that died of the known heap abort before their summary. */
  reruns?: number;
  passed: number;
  failed: number;
  ignored: number;
  seconds: number;
  note?: string;
  failureOutput?: string;
}

interface Summary {
  ok: boolean;
  passed: number;
  failed: number;
  ignored: number;
}

/** Parses Deno's closing line, e.g. `ok | 5 passed (3 steps) | 0 failed | 1 ignored (20ms)`. */
function parseSummary(output: string): Summary | null {
  const lines = output.split("\n").reverse();
  for (const line of lines) {
    const m =
      /^(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/
        .exec(line.trim());
    if (m) {
      return {
        ok: m[1] === "ok",
        passed: Number(m[2]),
        failed: Number(m[3]),
        ignored: Number(m[4] ?? 0),
      };
    }
  }
  return null;
}

async function collectTestFiles(dir: string, out: string[]): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) await collectTestFiles(path, out);
    else if (entry.isFile && entry.name.endsWith("_test.ts")) out.push(path);
  }
}

/**
 * The test files run a second time with LLMC_ENGINE set to the engine that
 * "auto" does not pick on this machine (the CPU engine on a machine without
 * a GPU, so these run on WebGPU too, and the reverse on a GPU machine). They
 * compress, save and evaluate through `oneshot` and the pipelines, which take
 * their engine from "auto"; the tests of ops, the model and GPTQ/SparseGPT
 * against their references pick both engines themselves (tests/_engines.ts).
 */
const SECOND_ENGINE_PATHS = [
  "tests/compress/reference_match_test.ts",
  "tests/graph/",
  "tests/moe/",
  "tests/oneshot/",
  "tests/pipelines/",
  "tests/quality/",
  "tests/recipes/",
  "tests/sink/",
];

/**
 * Files of SECOND_ENGINE_PATHS left out of the second engine's run, and why:
 * some name their engines themselves, so a second run would repeat the
 * first; AWQ's two stories260K quality files take about 90 s each on WebGPU
 * on a 2-core llvmpipe machine (10 s on the CPU engine), and AWQ on both
 * engines is checked by tests/modifiers/smoothing_engines_test.ts, which
 * every run includes.
 */
const NOT_ON_SECOND_ENGINE: Record<string, string> = {
  "tests/oneshot/engines_test.ts": "runs both engines itself",
  "tests/moe/moe_awq_test.ts": "every test names the CPU engine",
  "tests/graph/tap_parts_test.ts": "its one run names the CPU engine",
  "tests/quality/awq_quality_test.ts":
    "AWQ on both engines: tests/modifiers/smoothing_engines_test.ts",
  "tests/quality/awq_every_parent_test.ts":
    "AWQ on both engines: tests/modifiers/smoothing_engines_test.ts",
};

/** One test file run: on the engine "auto" picks, or with LLMC_ENGINE set to `engine`. */
export interface TestRun {
  file: string;
  engine?: EngineKind;
}

/**
 * The second runs of the selected files: those under SECOND_ENGINE_PATHS
 * (less NOT_ON_SECOND_ENGINE), on the engine that `auto` is not.
 *
 * @param files the selected test files (absolute paths under the root)
 * @param auto the engine "auto" picks in this environment
 * @returns one run per such file, with `engine` set
 */
export function secondEngineRuns(files: readonly string[], auto: EngineKind): TestRun[] {
  const engine: EngineKind = auto === "cpu" ? "webgpu" : "cpu";
  return secondEngineFiles(files).map((file) => ({ file, engine }));
}

/** The files of `files` under SECOND_ENGINE_PATHS, less NOT_ON_SECOND_ENGINE. */
function secondEngineFiles(files: readonly string[]): string[] {
  return files.filter((f) => {
    const path = f.slice(ROOT.length);
    return SECOND_ENGINE_PATHS.some((p) => path.startsWith(p)) && !(path in NOT_ON_SECOND_ENGINE);
  });
}

/**
 * The engine "auto" picks in this environment, asked in a child process:
 * on a machine with a GPU device node the answer probes a WebGPU adapter,
 * which loads the driver, and a process that did may crash at exit (the
 * known teardown crash) after the runner's closing line.
 */
async function autoEngineKindInChild(
  timeoutSeconds: number,
): Promise<EngineKind | { error: string }> {
  const r = await runChild([
    "eval",
    `import { autoEngineKind } from "./src/engine/choose.ts";` +
    `console.log("auto=" + (await autoEngineKind()).kind);`,
  ], timeoutSeconds);
  const kind = /^auto=(cpu|webgpu)$/m.exec(r.output)?.[1] as EngineKind | undefined;
  return kind ?? { error: r.output.trim() || `exit code ${r.code}` };
}

/** How a run is named in the output and in the timings file. */
function runName(run: TestRun): string {
  const path = run.file.slice(ROOT.length);
  return run.engine ? `${path} [${ENGINE_ENV}=${run.engine}]` : path;
}

/** `setsid` from util-linux, when present: each child then leads its own session. */
const SETSID = ["/usr/bin/setsid", "/bin/setsid"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** Fields of `/proc/<pid>/stat` after the command name: [state, ppid, pgrp, session, …]. */
function procStat(pid: number): string[] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/**
 * Every process started by `pid`: its descendants (by parent pid) and, when
 * it leads a session of its own, every process left in that session (an
 * orphan reparented to init keeps its session). Deno.Command has no setsid
 * option, so children are started through util-linux `setsid`.
 */
function processTree(pid: number): number[] {
  const all: Array<{ pid: number; ppid: number; sid: number }> = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const f = procStat(Number(e.name));
    if (f) all.push({ pid: Number(e.name), ppid: Number(f[1]), sid: Number(f[3]) });
  }
  const ownSid = Number(procStat(Deno.pid)?.[3] ?? -1);
  const childSid = Number(procStat(pid)?.[3] ?? -1);
  const found = new Set<number>([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (found.has(p.pid)) continue;
      if (found.has(p.ppid) || (childSid !== ownSid && p.sid === childSid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return [...found];
}

/** SIGKILLs a child and everything it started (see {@link processTree}). */
export function killProcessTree(pid: number): void {
  for (const p of processTree(pid)) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* already gone */ }
  }
}

/**
 * Runs `deno <args>` in its own session and returns its output; past the
 * timeout the whole process tree is killed, so a grandchild cannot outlive
 * the file or hold its output pipes open.
 *
 * @param args arguments of `deno`
 * @param timeoutSeconds the limit
 * @param env variables set for the child on top of this process's own
 * @returns exit code, signal, output and whether it timed out
 */
export async function runChild(
  args: string[],
  timeoutSeconds: number,
  env: Record<string, string> = {},
): Promise<{ code: number; signal: string | null; output: string; timedOut: boolean }> {
  const child = new Deno.Command(SETSID ?? DENO, {
    args: SETSID ? [DENO, ...args] : args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killProcessTree(child.pid);
  }, timeoutSeconds * 1000);
  const { code, signal, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code, signal, output: dec.decode(stdout) + dec.decode(stderr), timedOut };
}

async function runTestFile(
  run: TestRun,
  timeoutSeconds: number,
  typeChecked: boolean,
): Promise<FileResult> {
  const path = run.file.slice(ROOT.length);
  const rel = runName(run);
  const t0 = performance.now();
  let lastOutput = "";
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const r = await runChild(
      ["test", "-A", ...(typeChecked ? ["--no-check"] : []), path],
      timeoutSeconds,
      run.engine ? { [ENGINE_ENV]: run.engine } : {},
    );
    const seconds = (performance.now() - t0) / 1000;
    lastOutput = r.output;
    if (r.timedOut) {
      return {
        file: rel,
        passed: 0,
        failed: 1,
        ignored: 0,
        seconds,
        note: `timed out after ${timeoutSeconds} s`,
        failureOutput: r.output,
      };
    }
    const summary = parseSummary(r.output);
    const aborted = r.code === 134 || r.signal === "SIGABRT";
    // The same teardown bug has also surfaced as a segfault (rc 139) after a clean summary.
    const diedAtExit = aborted || r.code === 139 || r.signal === "SIGSEGV";
    const reruns = attempt - 1;
    const rerunNote = reruns
      ? `passed on attempt ${attempt} after ${reruns} heap abort(s) before the summary`
      : undefined;
    if (summary && summary.passed + summary.failed + summary.ignored === 0) {
      return {
        file: rel,
        passed: 0,
        failed: 1,
        ignored: 0,
        seconds,
        note: "the file ran no test",
        failureOutput: r.output,
      };
    }
    if (summary) {
      const clean = r.code === 0;
      const passedThenAborted = !clean && diedAtExit && summary.ok && summary.failed === 0;
      if (clean || passedThenAborted) {
        return {
          file: rel,
          ...summary,
          seconds,
          reruns,
          note: [
            rerunNote,
            passedThenAborted
              ? `all tests passed; the process then died at exit (rc ${r.code}, the known WebGPU teardown crash)`
              : undefined,
          ].filter(Boolean).join("; ") || undefined,
        };
      }
      return {
        file: rel,
        passed: summary.passed,
        failed: Math.max(summary.failed, 1),
        ignored: summary.ignored,
        seconds,
        note: `exit code ${r.code}`,
        failureOutput: r.output,
      };
    }
    const knownAbort = aborted && /double free or corruption|free\(\): |corrupted/.test(r.output) &&
      !/\.\.\. FAILED/.test(r.output);
    if (!knownAbort) {
      // No summary and not the known heap abort: a compile error or a crash. Fail now.
      return {
        file: rel,
        passed: 0,
        failed: 1,
        ignored: 0,
        seconds,
        note: `no test summary, exit code ${r.code}`,
        failureOutput: r.output,
      };
    }
    console.log(
      `  ${rel}: aborted before its summary (attempt ${attempt}/${MAX_ATTEMPTS}); rerunning`,
    );
  }
  return {
    file: rel,
    passed: 0,
    failed: 1,
    ignored: 0,
    seconds: (performance.now() - t0) / 1000,
    note: `aborted before its summary in ${MAX_ATTEMPTS} attempts`,
    failureOutput: lastOutput,
  };
}

async function typeCheck(timeoutSeconds: number, withTests: boolean): Promise<FileResult> {
  const targets = ["mod.ts"];
  for (const dir of ["src", "bench", "recipes"]) {
    try {
      for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
        if (e.isFile || e.isDirectory) {
          targets.push(dir);
          break;
        }
      }
    } catch { /* folder absent */ }
  }
  const t0 = performance.now();
  // --doc also type-checks the @example blocks of the JSDoc, so the docs cannot rot.
  const r = await runChild(["check", "--doc", ...targets], timeoutSeconds);
  // The test files are checked without --doc: their JSDoc examples are not documentation.
  const t = withTests && r.code === 0 && !r.timedOut
    ? await runChild(["check", "tests"], timeoutSeconds)
    : null;
  const ok = r.code === 0 && !r.timedOut && (t === null || (t.code === 0 && !t.timedOut));
  return {
    file: `deno check --doc ${targets.join(" ")}` + (withTests ? "; deno check tests" : ""),
    passed: ok ? 1 : 0,
    failed: ok ? 0 : 1,
    ignored: 0,
    seconds: (performance.now() - t0) / 1000,
    failureOutput: ok ? undefined : r.output + (t?.output ?? ""),
  };
}

const TIMES_FILE = `${ROOT}.cache/test_times.json`;

/** The previous full run's seconds per file, or an empty record. */
function previousTimes(): Record<string, number> {
  try {
    return JSON.parse(Deno.readTextFileSync(TIMES_FILE));
  } catch {
    return {};
  }
}

/** Slowest first, so the last files to start are short ones and the jobs end together. */
export function scheduleOrder(files: string[], times: Record<string, number>): string[] {
  const guess = (f: string) => times[f.slice(ROOT.length)] ?? (f.includes("/quality/") ? 60 : 5);
  return files.map((f, i) => ({ f, i, t: guess(f) }))
    .sort((a, b) => b.t - a.t || a.i - b.i)
    .map((x) => x.f);
}

/**
 * Runs `work` over `items`, at most `jobs` at a time, calling `done` as each
 * one finishes; results come back in the items' order.
 */
export async function runPool<T, R>(
  items: readonly T[],
  jobs: number,
  work: (item: T) => Promise<R>,
  done: (result: R) => void,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
      done(results[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  return results;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      timeout: { type: "string", default: "600" },
      jobs: { type: "string", default: Deno.env.get("LLMC_TEST_JOBS") ?? "2" },
      "no-check": { type: "boolean", default: false },
      "one-engine": { type: "boolean", default: false },
    },
  });
  const timeoutSeconds = Number(values.timeout);
  if (!(timeoutSeconds > 0)) {
    console.error(`--timeout must be a positive number of seconds, got '${values.timeout}'`);
    return 2;
  }
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) {
    console.error(`--jobs (or LLMC_TEST_JOBS) must be a positive integer, got '${values.jobs}'`);
    return 2;
  }
  const files: string[] = [];
  await collectTestFiles(`${ROOT}tests`, files);
  files.sort();
  const selected = positionals.length
    ? files.filter((f) => positionals.some((p) => f.includes(p)))
    : files;

  const results: FileResult[] = [];
  const fullRun = positionals.length === 0;
  let typeChecked = false;
  if (!values["no-check"]) {
    // A filtered run checks only what it runs (each child checks its own file).
    if (fullRun) {
      const r = await typeCheck(timeoutSeconds, true);
      console.log(`${r.failed ? "FAIL" : "ok  "} ${r.file} (${r.seconds.toFixed(1)} s)`);
      results.push(r);
      typeChecked = r.failed === 0;
    }
  }
  const runs: TestRun[] = selected.map((file) => ({ file }));
  if (!values["one-engine"] && secondEngineFiles(selected).length > 0) {
    const auto = await autoEngineKindInChild(timeoutSeconds);
    if (typeof auto !== "string") {
      console.log(`FAIL which engine "auto" picks: ${auto.error}`);
      console.log("0 passed, 1 failed");
      return 1;
    }
    const again = secondEngineRuns(selected, auto);
    runs.push(...again);
    console.log(
      `${again.length} pipeline test file(s) also run with ${ENGINE_ENV}=${
        again[0].engine
      } ("auto" picks ${auto} here); not again: ` +
        Object.entries(NOT_ON_SECOND_ENGINE).map(([f, why]) => `${f} (${why})`).join(", "),
    );
  }
  const times = previousTimes();
  // Keyed like the files scheduleOrder expects: the root, then the run's name.
  const byName = new Map(runs.map((r) => [ROOT + runName(r), r]));
  const fileResults = await runPool(
    scheduleOrder([...byName.keys()], times),
    jobs,
    (name) => runTestFile(byName.get(name)!, timeoutSeconds, typeChecked),
    (r) => {
      const status = r.failed ? "FAIL" : "ok  ";
      console.log(
        `${status} ${r.file}: ${r.passed} passed, ${r.failed} failed` +
          (r.ignored ? `, ${r.ignored} skipped` : "") +
          ` (${r.seconds.toFixed(1)} s)` + (r.note ? ` — ${r.note}` : ""),
      );
    },
  );
  results.push(...fileResults);
  if (fullRun) {
    try {
      Deno.mkdirSync(`${ROOT}.cache`, { recursive: true });
      const record = Object.fromEntries(
        fileResults.map((r) => [r.file, Number(r.seconds.toFixed(1))]),
      );
      Deno.writeTextFileSync(TIMES_FILE, JSON.stringify(record, null, 1));
    } catch { /* a read-only checkout only loses the ordering hint */ }
  }

  const failures = results.filter((r) => r.failed > 0);
  for (const f of failures) {
    console.log(`\n===== output of ${f.file} =====\n${f.failureOutput ?? ""}`);
  }
  const passed = results.reduce((s, r) => s + r.passed, 0);
  const failed = results.reduce((s, r) => s + r.failed, 0);
  const ignored = results.reduce((s, r) => s + r.ignored, 0);
  const aborts = results.filter((r) => r.note?.includes("died at exit")).length;
  if (aborts) console.log(`\n${aborts} file(s) passed and then hit the known WebGPU exit crash.`);
  const reruns = results.reduce((n, r) => n + (r.reruns ?? 0), 0);
  if (reruns) {
    console.log(`${reruns} rerun(s) after the heap abort struck before a file's summary.`);
  }
  if (ignored) {
    console.log(`${ignored} test(s) were skipped by their own condition (see each file's output).`);
  }
  console.log(`${passed} passed, ${failed} failed` + (ignored ? `, ${ignored} skipped` : ""));
  return failed > 0 || results.length === 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
