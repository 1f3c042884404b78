import { assertEquals, assertThrows } from "../quant/_assert.ts";
import { packFactor, packInt32, unpackInt32 } from "../../src/compress/pack_int32.ts";
import { CompressionError } from "../../src/compress/errors.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";

function pack(rows: number[][], bits: number): number[][] {
  const r = rows.length;
  const c = rows[0].length;
  const packed = packInt32(Int8Array.from(rows.flat()), r, c, bits, 1);
  const w = packed.length / r;
  return Array.from({ length: r }, (_, i) => Array.from(packed.slice(i * w, (i + 1) * w)));
}

Deno.test("pack_to_int32 test vectors (SPEC §1.11)", () => {
  assertEquals(pack([[1]], 4), [[9]]);
  assertEquals(pack([[1]], 8), [[129]]);
  assertEquals(pack([[1, 2, 3, 4]], 4), [[52137]]);
  assertEquals(pack([[-8, -7, -6, -5, -4, -3, -2, -1]], 4), [[1985229328]]);
  assertEquals(pack([[1, 2, 3, 4]], 8), [[-2071756159]]);
  assertEquals(pack([[-128, -127, -126, -125]], 8), [[50462976]]);
  assertEquals(pack([[-8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4]], 4), [[1985229328, 52137]]);
  assertEquals(
    pack([
      [-8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, -8, -8, -8, -8],
      [1, 2, 3, 4, -8, -8, -8, -8, -8, -7, -6, -5, -4, -3, -2, -1],
    ], 4),
    [[1985229328, 52137], [52137, 1985229328]],
  );
  assertEquals(
    pack([[1, 2, 3, 4, -128, -127, -126, -125], [-128, -127, -126, -125, 1, 2, 3, 4]], 8),
    [[-2071756159, 50462976], [50462976, -2071756159]],
  );
  // little-endian bytes of 0x76543210
  const w = packInt32(Int8Array.from([-8, -7, -6, -5, -4, -3, -2, -1]), 1, 8, 4, 1);
  assertEquals(new Uint8Array(w.buffer), [0x10, 0x32, 0x54, 0x76]);
  // the worked symmetric example: codes [7,-8,2,-2,0,2,3,0] → 0x8BA86A0F
  const e = packInt32(Int8Array.from([7, -8, 2, -2, 0, 2, 3, 0]), 1, 8, 4, 1);
  assertEquals([e[0], Array.from(new Uint8Array(e.buffer))], [-1951897073, [
    0x0f,
    0x6a,
    0xa8,
    0x8b,
  ]]);
});

Deno.test("round trips for random int4/int8 values and odd shapes", () => {
  const rnd = seededRandom(42);
  const shapes: [number, number][] = [[32, 100], [512, 1024], [830, 545], [342, 512], [256, 700]];
  for (const bits of [4, 8, 2, 3, 5, 6, 7, 1]) {
    for (const [r, c] of bits === 4 || bits === 8 ? shapes : [[13, 37] as [number, number]]) {
      const lo = -(2 ** (bits - 1));
      const v = Int8Array.from({ length: r * c }, () => lo + Math.floor(rnd() * 2 ** bits));
      const p = packInt32(v, r, c, bits, 1);
      assertEquals(
        p.length,
        r * Math.ceil(c / packFactor(bits)),
        `packed shape [${r}, ceil(${c}/pf)]`,
      );
      assertEquals(unpackInt32(p, r, c, bits, 1), v, `${bits}-bit [${r}, ${c}]`);
      const p0 = packInt32(v, r, c, bits, 0);
      assertEquals(p0.length, Math.ceil(r / packFactor(bits)) * c);
      assertEquals(unpackInt32(p0, r, c, bits, 0), v, `${bits}-bit dim 0 [${r}, ${c}]`);
    }
  }
});

Deno.test("zero points pack along dim 0: row 8·r8+i of a group at bits 4i", () => {
  // [out = 10, groups = 2]
  const zp = Int8Array.from({ length: 20 }, (_, i) => (i % 16) - 8);
  const p = packInt32(zp, 10, 2, 4, 0);
  assertEquals(p.length, 2 * 2); // [ceil(10/8), 2]
  // word (0, g=1) holds rows 0..7 of column 1
  let expect = 0;
  for (let i = 0; i < 8; i++) expect += (zp[i * 2 + 1] + 8) * 2 ** (4 * i);
  assertEquals(p[1], expect | 0);
  // padding nibbles are raw 0 (decode to -8, dropped on unpack)
  assertEquals(p[2] >>> 8, 0);
});

Deno.test("pack errors", () => {
  assertThrows(
    () => packInt32(Int8Array.from([8]), 1, 1, 4, 1),
    CompressionError,
    "does not fit 4 bits",
  );
  assertThrows(() => packInt32(Int8Array.from([1]), 1, 1, 9, 1), CompressionError, "1 to 8 bits");
  assertThrows(() => unpackInt32(new Int32Array(3), 1, 8, 4, 1), CompressionError, "3 words");
});
