import assert from "node:assert/strict";
import { removeOrphans } from "../../src/io/atomic_dir.ts";
import {
  acquireOutputLock,
  currentHolder,
  FOREIGN_STALE_MS,
  OutputLockedError,
} from "../../src/io/output_lock.ts";
import { withTempDir } from "./_helpers.ts";

/** The pid of a process that has exited (a short-lived child, already reaped). */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

Deno.test("a second lock on the same output is refused at once, naming the holder", async () => {
  await withTempDir(async (dir) => {
    const lock = await acquireOutputLock(`${dir}/out/`);
    assert.equal(lock.path, `${dir}/out.llmc-lock`);
    await assert.rejects(acquireOutputLock(`${dir}/out`), (e) => {
      assert.ok(e instanceof OutputLockedError);
      assert.equal(e.holder.pid, Deno.pid);
      assert.match(
        e.message,
        new RegExp(
          `^${dir}/out: is being written by another llmc run: pid ${Deno.pid} \\(this process\\) ` +
            `on host ${Deno.hostname()}, started \\d{4}-\\d\\d-\\d\\dT.*lock file ${dir}/out\\.llmc-lock`,
        ),
      );
      return true;
    });
    await lock.release();
    await lock.release(); // twice is fine
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    const again = await acquireOutputLock(`${dir}/out`);
    await again.release();
  });
});

Deno.test("stale locks are taken over: dead pid, reused pid, other boot, unreadable", async () => {
  await withTempDir(async (dir) => {
    const me = currentHolder();
    const records: Record<string, unknown> = {
      "dead pid": { ...me, pid: await deadPid() },
      "reused pid": { ...me, startTicks: (me.startTicks ?? 0) + 12345 },
      "other boot": { ...me, pid: 1, bootId: "00000000-0000-0000-0000-000000000000" },
    };
    for (const [why, record] of Object.entries(records)) {
      await Deno.writeTextFile(`${dir}/out.llmc-lock`, JSON.stringify(record));
      const warnings: string[] = [];
      const lock = await acquireOutputLock(`${dir}/out`, (m) => warnings.push(m));
      assert.equal(warnings.length, 1, why);
      assert.match(warnings[0], /took over the lock of a run that is gone/, why);
      assert.equal(JSON.parse(await Deno.readTextFile(lock.path)).pid, Deno.pid, why);
      await lock.release();
    }
    await Deno.writeTextFile(`${dir}/out.llmc-lock`, "{garbage");
    await assert.rejects(acquireOutputLock(`${dir}/out`), /is being written by another run/);
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(`${dir}/out.llmc-lock`, old, old);
    const lock = await acquireOutputLock(`${dir}/out`, () => {});
    await lock.release();
  });
});

Deno.test("a live process on this host, or a fresh lock of another host, keeps the lock", async () => {
  await withTempDir(async (dir) => {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      const ticks = Number(
        Deno.readTextFileSync(`/proc/${child.pid}/stat`).split(") ")[1].split(" ")[19],
      );
      const live = { ...currentHolder(), pid: child.pid, startTicks: ticks };
      await Deno.writeTextFile(`${dir}/out.llmc-lock`, JSON.stringify(live));
      await assert.rejects(acquireOutputLock(`${dir}/out`), OutputLockedError);
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
    // The same record is stale once that process is gone.
    const lock = await acquireOutputLock(`${dir}/out`, () => {});
    await lock.release();

    const foreign = { ...currentHolder(), host: "some-other-host", pid: 4242 };
    await Deno.writeTextFile(`${dir}/out.llmc-lock`, JSON.stringify(foreign));
    await assert.rejects(acquireOutputLock(`${dir}/out`), /pid 4242 on host some-other-host/);
    const old = new Date(Date.now() - FOREIGN_STALE_MS - 60_000);
    await Deno.utime(`${dir}/out.llmc-lock`, old, old);
    const taken = await acquireOutputLock(`${dir}/out`, () => {});
    await taken.release();
  });
});

Deno.test("refresh keeps a lock's mtime current", async () => {
  await withTempDir(async (dir) => {
    const lock = await acquireOutputLock(`${dir}/out`);
    const old = new Date(Date.now() - 3600_000);
    await Deno.utime(lock.path, old, old);
    await lock.refresh();
    assert.ok(Date.now() - Deno.statSync(lock.path).mtime!.getTime() < 60_000);
    await lock.release();
  });
});

Deno.test("removeOrphans removes dead runs' folders and restores an output moved aside", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    // Killed between the renames of a commit: OUT missing, the old output aside.
    await Deno.mkdir(`${out}.old-llmc-111`);
    await Deno.writeTextFile(`${out}.old-llmc-111/config.json`, "previous");
    await Deno.mkdir(`${out}.tmp-llmc-111`);
    await Deno.writeTextFile(`${out}.tmp-llmc-111/.llmc-shard-1.spill-111`, "x");
    await Deno.mkdir(`${out}.tmp-llmc-222`);
    await Deno.mkdir(`${dir}/other.tmp-llmc-333`);
    const notes: string[] = [];
    const done = await removeOrphans(out, (m) => notes.push(m));
    assert.deepEqual(done, [`${out}.old-llmc-111`, `${out}.tmp-llmc-111`, `${out}.tmp-llmc-222`]);
    assert.equal(await Deno.readTextFile(`${out}/config.json`), "previous");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "other.tmp-llmc-333",
      "out",
    ]);
    assert.match(notes[0], /restored the previous output/);
    // With OUT present, a moved-aside folder is only garbage.
    await Deno.mkdir(`${out}.old-llmc-444`);
    await removeOrphans(out, () => {});
    assert.equal(await Deno.readTextFile(`${out}/config.json`), "previous");
    assert.deepEqual(await removeOrphans(`${dir}/missing/out`, () => {}), []);
  });
});
