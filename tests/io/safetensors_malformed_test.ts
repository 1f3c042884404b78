import assert from "node:assert/strict";
import { SafetensorsError, SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { findDuplicateKey } from "../../src/io/_json_duplicate_key.ts";
import { buildFile, withTempDir } from "./_helpers.ts";

const t = (dtype: string, shape: number[], begin: number, end: number) => ({
  dtype,
  shape,
  data_offsets: [begin, end],
});

async function expectError(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.safetensors`;
    await Deno.writeFile(path, bytes);
    await assert.rejects(SafetensorsFile.open(path), (e) => {
      assert.ok(e instanceof SafetensorsError, `not a SafetensorsError: ${e}`);
      assert.equal(e.file, path);
      assert.ok(e.message.startsWith(path + ": "), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  });
}

Deno.test("a well-formed hand-built file opens (the baseline for the cases below)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ok.safetensors`;
    const header = { a: t("U8", [2], 0, 2), b: t("I16", [1, 1], 2, 4), e: t("F32", [0, 3], 4, 4) };
    await Deno.writeFile(path, buildFile(header, new Uint8Array([1, 2, 0xff, 0xff])));
    const f = await SafetensorsFile.open(path);
    try {
      assert.deepEqual(f.names(), ["a", "b", "e"]);
      assert.deepEqual(Array.from(await f.readF32("b")), [-1]);
      assert.equal((await f.readF32("e")).length, 0);
      assert.deepEqual(f.metadata, {});
    } finally {
      f.close();
    }
  });
});

Deno.test("truncated files", async () => {
  await expectError(new Uint8Array(0), /at least the 8-byte header length/);
  await expectError(new Uint8Array([5, 0, 0]), /at least the 8-byte header length/);
  const good = buildFile({ a: t("U8", [4], 0, 4) }, new Uint8Array(4));
  await expectError(
    good.subarray(0, good.length - 1),
    /cover 4 bytes but the data section .* holds 3/,
  );
  await expectError(good.subarray(0, 12), /header length \d+ exceeds the 4 bytes/);
});

Deno.test("header length beyond the file or the limit", async () => {
  const data = new Uint8Array(4);
  const header = { a: t("U8", [4], 0, 4) };
  await expectError(buildFile(header, data, 1n << 40n), /exceeds the limit/);
  await expectError(buildFile(header, data, 0xffffffffffffffffn), /exceeds the limit/);
  await expectError(buildFile(header, data, 1000n), /exceeds the \d+ bytes that follow/);
  // Shorter than the real header: the JSON is cut.
  await expectError(buildFile(header, data, 10n), /not valid JSON/);
  await expectError(buildFile(header, data, 0n), /does not start with '\{'/);
});

Deno.test("sizes that do not match numel × dtype size", async () => {
  await expectError(
    buildFile({ a: t("F32", [2], 0, 4) }, new Uint8Array(4)),
    /tensor 'a'.*needs 8/,
  );
  await expectError(
    buildFile({ a: t("F32", [2 ** 40, 2 ** 40], 0, 4) }, new Uint8Array(4)),
    /tensor 'a'.*more than 2\^53/,
  );
  await expectError(buildFile({ a: t("U8", [-1], 0, 0) }, new Uint8Array(0)), /tensor 'a': shape/);
  await expectError(buildFile({ a: t("U8", [1.5], 0, 0) }, new Uint8Array(0)), /tensor 'a': shape/);
  await expectError(
    buildFile({ a: { dtype: "U8", shape: "4", data_offsets: [0, 4] } }, new Uint8Array(4)),
    /tensor 'a': shape/,
  );
  await expectError(
    buildFile({ a: t("U8", [4], 4, 0) }, new Uint8Array(4)),
    /ends before it begins/,
  );
  await expectError(
    buildFile({ a: { dtype: "U8", shape: [4], data_offsets: [0] } }, new Uint8Array(4)),
    /tensor 'a': data_offsets/,
  );
  await expectError(
    buildFile({ a: { dtype: "U8", shape: [4] } }, new Uint8Array(4)),
    /tensor 'a': data_offsets \(missing\)/,
  );
  await expectError(buildFile({ a: [1, 2] }, new Uint8Array(0)), /tensor 'a': entry is an array/);
});

Deno.test("overlapping offsets, gaps, and data past the tensors", async () => {
  await expectError(
    buildFile({ a: t("U8", [4], 0, 4), b: t("U8", [4], 2, 6) }, new Uint8Array(6)),
    /tensor 'b'.*overlaps/,
  );
  await expectError(
    buildFile({ a: t("U8", [4], 0, 4), b: t("U8", [4], 0, 4) }, new Uint8Array(4)),
    /overlaps/,
  );
  await expectError(
    buildFile({ a: t("U8", [2], 0, 2), b: t("U8", [2], 4, 6) }, new Uint8Array(6)),
    /tensor 'b'.*gap: bytes \[2, 4\)/,
  );
  await expectError(buildFile({ a: t("U8", [2], 2, 4) }, new Uint8Array(4)), /tensor 'a'.*gap/);
  await expectError(buildFile({ a: t("U8", [2], 0, 2) }, new Uint8Array(3)), /cover 2 bytes/);
  await expectError(buildFile({ a: t("U8", [4], 0, 4) }, new Uint8Array(2)), /cover 4 bytes/);
});

Deno.test("unknown dtypes", async () => {
  for (const dtype of ["F4", "bf16", "float32", "U16", ""]) {
    await expectError(
      buildFile({ a: t(dtype, [1], 0, 1) }, new Uint8Array(1)),
      /tensor 'a': dtype/,
    );
  }
  await expectError(
    buildFile({ a: { shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
    /tensor 'a': dtype \(missing\)/,
  );
});

Deno.test("duplicate names, even where JSON.parse would hide them", async () => {
  const text = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},' +
    '"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}';
  await expectError(buildFile(text, new Uint8Array(4)), /key 'a' twice at the top level/);
  // The same name spelled with an escape is the same key.
  const escaped = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},' +
    '"\\u0061":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}';
  await expectError(buildFile(escaped, new Uint8Array(4)), /key 'a' twice/);
  const field = '{"a":{"dtype":"U8","dtype":"I8","shape":[2],"data_offsets":[0,2]}}';
  await expectError(buildFile(field, new Uint8Array(2)), /key 'dtype' twice in 'a'/);
  assert.deepEqual(findDuplicateKey('{"x":[{"k":1},{"k":2}],"s":"{\\"x\\":1}","x2":1}'), null);
  assert.deepEqual(findDuplicateKey('{"o":{"p":[0,{"q":1,"q":2}]}}'), {
    key: "q",
    path: ["o", "p", "[]"],
  });
});

Deno.test("non-JSON, non-object and non-UTF-8 headers", async () => {
  await expectError(buildFile("{not json}", new Uint8Array(0)), /not valid JSON/);
  await expectError(buildFile("[1,2]", new Uint8Array(0)), /does not start with '\{'/);
  await expectError(buildFile('{"a":1} x', new Uint8Array(0)), /not valid JSON/);
  const bad = buildFile("{}", new Uint8Array(0));
  const withInvalidUtf8 = buildFile('{"\xff":1}', new Uint8Array(0));
  withInvalidUtf8.set([0xc3, 0x28], 10); // an invalid two-byte sequence inside the key
  await expectError(withInvalidUtf8, /not valid UTF-8/);
  // An empty object is a valid, empty file.
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/e.safetensors`, bad);
    const f = await SafetensorsFile.open(`${dir}/e.safetensors`);
    assert.deepEqual(f.names(), []);
    f.close();
  });
});

Deno.test("__metadata__ must map strings to strings", async () => {
  await expectError(
    buildFile({ __metadata__: { format: 1 } }, new Uint8Array(0)),
    /__metadata__\.format/,
  );
  await expectError(buildFile({ __metadata__: [] }, new Uint8Array(0)), /__metadata__/);
  await withTempDir(async (dir) => {
    const path = `${dir}/m.safetensors`;
    await Deno.writeFile(path, buildFile({ __metadata__: null }, new Uint8Array(0)));
    const f = await SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, {});
    f.close();
  });
});

Deno.test("trailing spaces after the JSON are allowed (the writer's padding)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.safetensors`;
    await Deno.writeFile(
      path,
      buildFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}   ', new Uint8Array([7])),
    );
    const f = await SafetensorsFile.open(path);
    assert.deepEqual(Array.from(await f.readTyped("a") as Uint8Array), [7]);
    f.close();
  });
});
