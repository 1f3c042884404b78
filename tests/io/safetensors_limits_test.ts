import assert from "node:assert/strict";
import {
  MAX_HEADER_ITEMS,
  MAX_HEADER_NESTED_ITEMS,
  parseSafetensorsHeader,
} from "../../src/io/safetensors_header.ts";
import { SafetensorsError } from "../../src/io/safetensors_error.ts";
import { buildFile, withTempDir } from "./_helpers.ts";

const enc = new TextEncoder();
const W = '"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}';

function refuse(header: string, pattern: RegExp): void {
  const bytes = enc.encode(header);
  assert.throws(() => parseSafetensorsHeader(bytes, 8 + bytes.length + 2, "x.safetensors"), (e) => {
    assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${e}`);
    assert.match(e.message, /^x\.safetensors: /);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("nesting beyond a real header's three levels is refused before JSON.parse", () => {
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  refuse(`{"__metadata__":{"a":${deep}},${W}}`, /header nests deeper than 3 levels/);
  refuse(
    `{${W},"junk":{"x":{"y":{"z":1}}}}`,
    /header nests deeper than 3 levels \(line 1, offset \d+\)/,
  );
  refuse(`{"w":{"dtype":"U8","shape":[[2]],"data_offsets":[0,2]}}`, /nests deeper than 3/);
  // A valid header at the full depth still parses.
  const ok = enc.encode(`{"__metadata__":{"format":"pt"},${W}}`);
  assert.equal(parseSafetensorsHeader(ok, 8 + ok.length + 2, "x").tensors.length, 1);
});

Deno.test("__metadata__ must be a flat string-to-string map", () => {
  refuse(`{"__metadata__":{"a":{}},${W}}`, /'__metadata__\.a' is a object.*flat string-to-string/);
  refuse(`{"__metadata__":{"a":1},${W}}`, /'__metadata__\.a' is a number/);
  refuse(`{"__metadata__":[],${W}}`, /'__metadata__' is an array; expected a flat/);
});

Deno.test("item counts are bounded before parsing: metadata entries, dims, tensors", () => {
  const keys = Array.from({ length: MAX_HEADER_NESTED_ITEMS }, (_, i) => `"k${i}":"v"`);
  refuse(`{"__metadata__":{${keys.join(",")}},${W}}`, /the limit is 8192/);
  const dims = Array(MAX_HEADER_NESTED_ITEMS + 2).fill(1).join(",");
  refuse(`{"w":{"dtype":"U8","shape":[${dims}],"data_offsets":[0,1]}}`, /the limit is 8192/);
  const n = Math.ceil(MAX_HEADER_ITEMS / 10);
  const many = Array.from(
    { length: n },
    (_, i) => `"t${i}":{"dtype":"U8","shape":[],"data_offsets":[${i},${i + 1}]}`,
  );
  refuse(`{${many.join(",")}}`, new RegExp(`JSON items; the limit is ${MAX_HEADER_ITEMS}`));
});

Deno.test("a 90 MB deeply nested header costs less than 4x its size + 200 MB and fails fast", async () => {
  await withTempDir(async (dir) => {
    const n = 45_000_000;
    const header = `{"__metadata__":{"a":${"[".repeat(n)}${"]".repeat(n)}}}`;
    await Deno.writeFile(`${dir}/deep.safetensors`, buildFile(header, new Uint8Array()));
    const size = (await Deno.stat(`${dir}/deep.safetensors`)).size;
    // A fresh process, so its peak (VmHWM) is this open's alone.
    const script = `
      import { SafetensorsFile } from "${new URL(
      "../../src/io/safetensors_read.ts",
      import.meta.url,
    )}";
      const base = Deno.memoryUsage().rss;
      let msg = "opened";
      try { (await SafetensorsFile.open(Deno.args[0])).close(); } catch (e) { msg = e.constructor.name + ": " + e.message; }
      const hwm = Number(/VmHWM:\\s+(\\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))[1]) * 1024;
      console.log(JSON.stringify({ msg, growth: hwm - base }));
    `;
    await Deno.writeTextFile(`${dir}/open.ts`, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${dir}/open.ts`, `${dir}/deep.safetensors`],
    }).output();
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.match(
      r.msg,
      /^SafetensorsError: .*deep\.safetensors: header nests deeper than 3 levels/,
    );
    assert.ok(r.growth < 4 * size + 200e6, `peak grew ${r.growth} bytes for a ${size}-byte file`);
  });
});
