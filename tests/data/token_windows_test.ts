import { assertEquals, assertThrows } from "../model/_assert.ts";
import { tokenWindows } from "../../src/data/token_windows.ts";

Deno.test("tokenWindows: BOS plus L-1 consecutive tokens, partial tail dropped", () => {
  const ids = [10, 11, 12, 13, 14, 15, 16];
  const w = tokenWindows(ids, 3, 1);
  assertEquals(w.map((x) => [...x]), [[1, 10, 11], [1, 12, 13], [1, 14, 15]]);
});

Deno.test("tokenWindows: limit keeps the first windows", () => {
  const w = tokenWindows([10, 11, 12, 13, 14, 15], 3, 1, 2);
  assertEquals(w.map((x) => [...x]), [[1, 10, 11], [1, 12, 13]]);
});

Deno.test("tokenWindows: without BOS, windows are L tokens", () => {
  const w = tokenWindows([10, 11, 12, 13, 14], 2, null);
  assertEquals(w.map((x) => [...x]), [[10, 11], [12, 13]]);
});

Deno.test("tokenWindows: rejects seqLen below 2", () => {
  assertThrows(() => tokenWindows([1, 2, 3], 1, 1), RangeError, "seqLen");
});
