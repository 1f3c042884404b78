import assert from "node:assert/strict";
import { SafetensorsError, SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { DTYPE_BYTES } from "../../src/io/dtype.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { STORIES_FILE, withTempDir } from "./_helpers.ts";

// Every mutated file must either open and read back consistently, or be
// refused with a SafetensorsError. Any other exception, or a hang, fails.
const CASES = 1200;
const SEED = 20240611;

const original = await Deno.readFile(STORIES_FILE);
const headerLen = Number(new DataView(original.buffer).getBigUint64(0, true));
const headerText = new TextDecoder().decode(original.subarray(8, 8 + headerLen));
const data = original.subarray(8 + headerLen);
const originalHeader = JSON.parse(headerText) as Record<string, {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}>;
const names = Object.keys(originalHeader).filter((n) => n !== "__metadata__");

function withHeader(text: string, tail: Uint8Array = data, lengthDelta = 0n): Uint8Array {
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + tail.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length) + lengthDelta, true);
  out.set(json, 8);
  out.set(tail, 8 + json.length);
  return out;
}

type Mutation = (r: () => number) => Uint8Array;
const pick = <T>(r: () => number, xs: T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

const mutations: Array<[string, Mutation]> = [
  ["byte flips in the header", (r) => {
    const out = original.slice();
    for (let k = int(r, 1, 4); k > 0; k--) {
      const at = 8 + int(r, 0, headerLen - 1);
      out[at] = r() < 0.5 ? out[at] ^ (1 << int(r, 0, 7)) : int(r, 0, 255);
    }
    return out;
  }],
  ["length field changes", (r) => {
    const out = original.slice();
    const dv = new DataView(out.buffer);
    const choices = [
      0n,
      1n,
      BigInt(headerLen - int(r, 1, 64)),
      BigInt(headerLen + int(r, 1, 64)),
      BigInt(original.length - 8),
      BigInt(original.length),
      BigInt(int(r, 0, 2 ** 31)),
      (1n << 64n) - 1n,
      1n << 63n,
      BigInt(100_000_001),
    ];
    dv.setBigUint64(0, pick(r, choices), true);
    return out;
  }],
  ["JSON edits of offsets", (r) => {
    const h = structuredClone(originalHeader);
    const e = h[pick(r, names)];
    const i = int(r, 0, 1);
    const vals: unknown[] = [
      e.data_offsets[i] + int(r, -8, 8),
      e.data_offsets[1 - i],
      -1,
      1.5,
      "0",
      null,
      2 ** 53 + 2,
      1e308,
      data.length,
      data.length + 4,
    ];
    (e.data_offsets as unknown[])[i] = pick(r, vals);
    if (r() < 0.2) {
      (e as Record<string, unknown>).data_offsets = pick(r, [[], [0], [0, 1, 2], {}, "x"]);
    }
    return withHeader(JSON.stringify(h));
  }],
  ["JSON edits of shapes", (r) => {
    const h = structuredClone(originalHeader);
    const e = h[pick(r, names)];
    const choice = int(r, 0, 6);
    if (choice === 0) e.shape.push(int(r, 0, 3));
    else if (choice === 1) e.shape.pop();
    else if (choice === 2) e.shape[0] = int(r, 0, 600);
    else if (choice === 3) e.shape = e.shape.slice().reverse();
    else if (choice === 4) (e.shape as unknown[])[0] = pick(r, [-1, 0.5, "64", null, 2 ** 60]);
    else if (choice === 5) e.shape = [e.shape.reduce((a, b) => a * b, 1)]; // same numel: valid
    else (e as Record<string, unknown>).shape = pick(r, [null, {}, "64", 64]);
    return withHeader(JSON.stringify(h));
  }],
  ["JSON edits of dtypes", (r) => {
    const h = structuredClone(originalHeader);
    const e = h[pick(r, names)];
    const dtypes = [...Object.keys(DTYPE_BYTES), "f32", "F4", "U16", "", 7, null];
    (e as Record<string, unknown>).dtype = pick(r, dtypes);
    // Sometimes fix the shape up so the new dtype's size matches: a valid file.
    if (typeof e.dtype === "string" && e.dtype in DTYPE_BYTES && r() < 0.5) {
      const bytes = e.data_offsets[1] - e.data_offsets[0];
      const size = DTYPE_BYTES[e.dtype as keyof typeof DTYPE_BYTES];
      if (bytes % size === 0) e.shape = [bytes / size];
    }
    return withHeader(JSON.stringify(h));
  }],
  ["renames, deletions, swaps and duplicates", (r) => {
    const choice = int(r, 0, 3);
    if (choice === 0) {
      // A raw-text duplicate: JSON.parse alone would not notice.
      const [a, b] = [pick(r, names), pick(r, names)];
      return withHeader(headerText.replace(`"${a}"`, `"${b}"`));
    }
    const h = structuredClone(originalHeader);
    if (choice === 1) delete h[pick(r, names)];
    else if (choice === 2) {
      const [a, b] = [h[pick(r, names)], h[pick(r, names)]];
      [a.data_offsets, b.data_offsets] = [b.data_offsets, a.data_offsets];
    } else {(h as Record<string, unknown>).__metadata__ = pick(r, [
        { format: 1 },
        [],
        "pt",
        null,
        {},
      ]);}
    return withHeader(JSON.stringify(h));
  }],
  ["truncation and extension of the file", (r) => {
    if (r() < 0.5) return original.slice(0, int(r, 0, original.length - 1));
    const out = new Uint8Array(original.length + int(r, 1, 16));
    out.set(original);
    return out;
  }],
  ["padding and length off by a little", (r) => {
    const pad = " ".repeat(int(r, 0, 9));
    return withHeader(headerText + pad, data, BigInt(int(r, -3, 3)));
  }],
];

async function check(path: string, bytes: Uint8Array, label: string): Promise<"ok" | "refused"> {
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(path);
  } catch (e) {
    if (e instanceof SafetensorsError) return "refused";
    throw new Error(`${label}: open threw ${e}`, { cause: e });
  }
  try {
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    let covered = 0;
    for (const name of f.names()) {
      const info = f.info(name);
      const raw = await f.readRaw(name);
      assert.equal(raw.length, info.byteLength, `${label}: ${name}`);
      assert.deepEqual(raw, bytes.subarray(info.byteOffset, info.byteOffset + info.byteLength));
      const numel = info.shape.reduce((a, b) => a * b, 1);
      assert.equal(numel * DTYPE_BYTES[info.dtype], info.byteLength, `${label}: ${name}`);
      assert.equal((await f.readF32(name)).length, numel, `${label}: ${name}`);
      assert.equal((await f.readTyped(name)).length, numel, `${label}: ${name}`);
      covered += info.byteLength;
    }
    assert.equal(8 + n + covered, bytes.length, `${label}: tensors tile the data section`);
    return "ok";
  } finally {
    f.close();
  }
}

Deno.test(`fuzz: ${CASES} mutated copies of stories260K either read consistently or throw SafetensorsError`, async () => {
  const r = seededRandom(SEED);
  const tally = new Map<string, { ok: number; refused: number }>();
  await withTempDir(async (dir) => {
    const path = `${dir}/fuzz.safetensors`;
    for (let i = 0; i < CASES; i++) {
      const [label, mutate] = mutations[i % mutations.length];
      const bytes = mutate(r);
      await Deno.writeFile(path, bytes);
      const outcome = await check(path, bytes, `case ${i} (${label})`);
      const t = tally.get(label) ?? { ok: 0, refused: 0 };
      t[outcome]++;
      tally.set(label, t);
    }
  });
  // The mutations must exercise both outcomes, or the fuzz proves little.
  const total = [...tally.values()].reduce((a, t) => ({
    ok: a.ok + t.ok,
    refused: a.refused + t.refused,
  }));
  assert.ok(total.ok > 10, `only ${total.ok} mutated files were valid`);
  assert.ok(total.refused > CASES / 2, `only ${total.refused} were refused`);
});
