/**
 * The test runner's timeout kills everything a test file started, not only
 * the direct child: a grandchild that outlived it would keep running and
 * hold the output pipes open, so the runner itself would hang.
 */

import assert from "node:assert/strict";
import { runChild, runPool, scheduleOrder, secondEngineRuns } from "./run_tests.ts";

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\\S+ \\(.*\\) Z/.test(stat); // a zombie is dead
  } catch {
    return false;
  }
}

Deno.test("a timed-out file's whole process tree is killed, orphans included", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pids = `${dir}/pids`;
    // The child starts a grandchild that detaches (its parent exits: reparented to
    // init) and a second one it keeps, then hangs; both hold the output pipe.
    const script = `
      const orphan = new Deno.Command("sh", { args: ["-c", "sleep 600 1>&2 & echo $!"], stdout: "piped", stderr: "inherit" });
      const { stdout } = await orphan.output();
      const kept = new Deno.Command("sleep", { args: ["600"] }).spawn();
      Deno.writeTextFileSync(${
      JSON.stringify(pids)
    }, new TextDecoder().decode(stdout).trim() + " " + kept.pid);
      await new Promise(() => setInterval(() => {}, 1000));
    `;
    const r = await runChild(["eval", script], 3);
    assert.ok(r.timedOut, r.output);
    const [orphan, kept] = (await Deno.readTextFile(pids)).split(" ").map(Number);
    assert.ok(orphan > 0 && kept > 0);
    // SIGKILL is delivered at once, but the kernel may need a moment to reap.
    for (let i = 0; i < 50 && (alive(orphan) || alive(kept)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!alive(orphan), `the detached grandchild ${orphan} was killed`);
    assert.ok(!alive(kept), `the grandchild ${kept} was killed`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the pool runs at most `jobs` files at once and keeps the items' order", async () => {
  let running = 0;
  let peak = 0;
  const finished: number[] = [];
  const results = await runPool(
    [30, 5, 20, 1, 10],
    2,
    async (ms) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms * 2;
    },
    (r) => finished.push(r),
  );
  assert.deepEqual(results, [60, 10, 40, 2, 20]);
  assert.equal(peak, 2);
  assert.equal(finished.length, 5);
});

Deno.test("the slowest files start first; unknown files guess quality tests as slow", () => {
  const root = new URL("../", import.meta.url).pathname;
  const files = ["tests/a_test.ts", "tests/quality/q_test.ts", "tests/b_test.ts"].map((f) =>
    root + f
  );
  assert.deepEqual(
    scheduleOrder(files, { "tests/b_test.ts": 100 }).map((f) => f.slice(root.length)),
    ["tests/b_test.ts", "tests/quality/q_test.ts", "tests/a_test.ts"],
  );
  assert.deepEqual(
    scheduleOrder(files, {}).map((f) => f.slice(root.length)),
    ["tests/quality/q_test.ts", "tests/a_test.ts", "tests/b_test.ts"],
  );
});

Deno.test("pipeline test files run again on the engine auto does not pick", () => {
  const root = new URL("../", import.meta.url).pathname;
  const files = [
    "tests/oneshot/oneshot_test.ts",
    "tests/quality/gptq_quality_test.ts",
    "tests/quality/awq_quality_test.ts",
    "tests/compress/reference_match_test.ts",
    "tests/compress/sparse_test.ts",
    "tests/model/golden_test.ts",
  ].map((f) => root + f);
  const names = (runs: { file: string; engine?: string }[]) =>
    runs.map((r) => `${r.file.slice(root.length)} ${r.engine}`);
  assert.deepEqual(names(secondEngineRuns(files, "cpu")), [
    "tests/oneshot/oneshot_test.ts webgpu",
    "tests/quality/gptq_quality_test.ts webgpu",
    "tests/compress/reference_match_test.ts webgpu",
  ]);
  assert.deepEqual(
    names(secondEngineRuns(files, "webgpu")).map((n) => n.split(" ")[1]),
    ["cpu", "cpu", "cpu"],
  );
});
