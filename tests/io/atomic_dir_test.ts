import assert from "node:assert/strict";
import { AtomicDirError, atomicOutputDir, findStaleTmpDirs } from "../../src/io/atomic_dir.ts";
import { withTempDir } from "./_helpers.ts";

const ls = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("atomicOutputDir: written into a sibling, renamed on commit", async () => {
  await withTempDir(async (parent) => {
    const final = `${parent}/out`;
    const out = await atomicOutputDir(final, { overwrite: false });
    assert.equal(out.tmpDir, `${final}.tmp-llmc-${Deno.pid}`);
    await Deno.writeTextFile(`${out.tmpDir}/config.json`, "{}");
    assert.deepEqual(ls(parent), [`out.tmp-llmc-${Deno.pid}`]); // nothing at the final path yet
    await out.commit();
    assert.deepEqual(ls(parent), ["out"]);
    assert.equal(await Deno.readTextFile(`${final}/config.json`), "{}");
    await assert.rejects(out.commit(), AtomicDirError);
  });
});

Deno.test("atomicOutputDir refuses an existing folder before writing anything", async () => {
  await withTempDir(async (parent) => {
    const final = `${parent}/out/`; // a trailing slash names the same folder
    await Deno.mkdir(final);
    await assert.rejects(atomicOutputDir(final), (e) => {
      assert.ok(e instanceof AtomicDirError);
      assert.match(e.message, /already exists/);
      return true;
    });
    assert.deepEqual(ls(parent), ["out"]);
  });
});

Deno.test("atomicOutputDir with overwrite replaces the old folder whole", async () => {
  await withTempDir(async (parent) => {
    const final = `${parent}/out`;
    await Deno.mkdir(final);
    await Deno.writeTextFile(`${final}/old.txt`, "old");
    const out = await atomicOutputDir(final, { overwrite: true });
    await Deno.writeTextFile(`${out.tmpDir}/new.txt`, "new");
    assert.deepEqual(ls(final), ["old.txt"]); // untouched until commit
    await out.commit();
    assert.deepEqual(ls(parent), ["out"]);
    assert.deepEqual(ls(final), ["new.txt"]);
  });
});

Deno.test("atomicOutputDir: abort removes the temporary folder; a folder appearing meanwhile blocks commit", async () => {
  await withTempDir(async (parent) => {
    const final = `${parent}/out`;
    const a = await atomicOutputDir(final);
    await Deno.writeTextFile(`${a.tmpDir}/x`, "x");
    await a.abort();
    await a.abort();
    assert.deepEqual(ls(parent), []);

    const b = await atomicOutputDir(final);
    await Deno.mkdir(final);
    await assert.rejects(b.commit(), /appeared while writing/);
    assert.deepEqual(ls(parent), ["out", `out.tmp-llmc-${Deno.pid}`]);
  });
});

Deno.test("findStaleTmpDirs finds leftovers of earlier runs only", async () => {
  await withTempDir(async (parent) => {
    for (
      const d of ["out.tmp-llmc-1", "out.tmp-llmc-22", "out.tmp-llmc-x", "other.tmp-llmc-3", "out"]
    ) {
      await Deno.mkdir(`${parent}/${d}`);
    }
    await Deno.writeTextFile(`${parent}/out.tmp-llmc-4`, "a file, not a folder");
    assert.deepEqual(await findStaleTmpDirs(`${parent}/out`), [
      `${parent}/out.tmp-llmc-1`,
      `${parent}/out.tmp-llmc-22`,
    ]);
    assert.deepEqual(await findStaleTmpDirs(`${parent}/missing/out`), []);
  });
});
