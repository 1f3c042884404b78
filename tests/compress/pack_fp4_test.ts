import { assert, assertEquals, assertThrows } from "../quant/_assert.ts";
import { packFp4, unpackFp4 } from "../../src/compress/pack_fp4.ts";
import { CompressionError } from "../../src/compress/errors.ts";

Deno.test("FP4 packing: [-0.5,-6,-0.5,-1.5,-1,6,0,-0] → F9 B9 7A 80", () => {
  const row = new Float32Array([-0.5, -6, -0.5, -1.5, -1, 6, 0, -0]);
  assertEquals(packFp4(row, 1, 8), [0xf9, 0xb9, 0x7a, 0x80]);
});

Deno.test("FP4 round trip preserves the sign bit of -0.0", () => {
  const vals = new Float32Array([
    -0.5,
    -6,
    -0.5,
    -1.5,
    -1,
    6,
    0,
    -0,
    0.5,
    1,
    1.5,
    2,
    3,
    4,
    -2,
    -3,
  ]);
  const back = unpackFp4(packFp4(vals, 2, 8), 2, 8);
  assertEquals(back, vals);
  assert(Object.is(back[7], -0) && Object.is(back[6], 0));
});

Deno.test("odd column counts raise", () => {
  assertThrows(
    () => packFp4(new Float32Array(3), 1, 3, "m.weight"),
    CompressionError,
    "m.weight: FP4 packing needs an even",
  );
  assertThrows(() => unpackFp4(new Uint8Array(3), 1, 8), CompressionError);
});
