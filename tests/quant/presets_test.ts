import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  isPresetName,
  PRESET_NAMES,
  presetScheme,
  UnknownPresetError,
} from "../../src/quant/presets.ts";
import { quantizationSchemeToJson } from "../../src/quant/scheme.ts";
import { QuantizationConfigError } from "../../src/quant/errors.ts";

function weights(name: string) {
  return quantizationSchemeToJson(presetScheme(name, ["Linear"])).weights as Record<
    string,
    unknown
  >;
}
function inputs(name: string) {
  return quantizationSchemeToJson(presetScheme(name, ["Linear"])).input_activations as
    | Record<string, unknown>
    | null;
}

Deno.test("0.13.0 presets: weights", () => {
  const pick = (
    o: Record<string, unknown>,
  ) => [o.num_bits, o.type, o.strategy, o.group_size, o.symmetric];
  assertEquals(pick(weights("W8A16")), [8, "int", "channel", null, true]);
  assertEquals(pick(weights("W4A16")), [4, "int", "group", 128, true]);
  assertEquals(pick(weights("W4A16_ASYM")), [4, "int", "group", 128, false]);
  assertEquals(pick(weights("W8A8")), [8, "int", "channel", null, true]);
  assertEquals(pick(weights("INT8")), [8, "int", "channel", null, true]);
  assertEquals(pick(weights("W4A8")), [4, "int", "group", 128, true]);
  assertEquals(pick(weights("FP8")), [8, "float", "tensor", null, true]);
  assertEquals(pick(weights("FP8_DYNAMIC")), [8, "float", "channel", null, true]);
  assertEquals(pick(weights("FP8_BLOCK")), [8, "float", "block", null, true]);
  assertEquals(weights("FP8_BLOCK").block_structure, [128, 128]);
  assertEquals(pick(weights("NVFP4A16")), [4, "float", "tensor_group", 16, true]);
  assertEquals(pick(weights("MXFP4A16")), [4, "float", "group", 32, true]);
  assertEquals(weights("NVFP4A16").scale_dtype, "torch.float8_e4m3fn");
  assertEquals(weights("NVFP4A16").observer, "minmax");
  assertEquals(weights("NVFP4").observer, "static_minmax");
  assertEquals(weights("MXFP4").scale_dtype, "torch.uint8");
  assertEquals(weights("MXFP4").zp_dtype, null);
  assertEquals(weights("W4A16_ASYM").zp_dtype, "torch.int8");
});

Deno.test("0.13.0 presets: input activations", () => {
  for (const name of ["W8A16", "W4A16", "W4A16_ASYM", "NVFP4A16", "MXFP4A16"]) {
    assertEquals(inputs(name), null, name);
  }
  const pick = (o: Record<string, unknown> | null) =>
    o && [o.num_bits, o.type, o.strategy, o.dynamic, o.observer, o.group_size];
  assertEquals(pick(inputs("W8A8")), [8, "int", "token", true, null, null]);
  assertEquals(pick(inputs("W4A8")), [8, "int", "token", true, null, null]);
  assertEquals(pick(inputs("FP8")), [8, "float", "tensor", false, "minmax", null]);
  assertEquals(pick(inputs("FP8_DYNAMIC")), [8, "float", "token", true, null, null]);
  assertEquals(pick(inputs("FP8_BLOCK")), [8, "float", "group", true, null, 128]);
  assertEquals(pick(inputs("NVFP4")), [4, "float", "tensor_group", "local", "static_minmax", 16]);
  assertEquals(pick(inputs("MXFP4")), [4, "float", "group", true, null, 32]);
  assertEquals(pick(inputs("W4AFP8")), [8, "float", "token", true, null, null]);
  assertEquals(presetScheme("UNQUANTIZED", ["Linear"]).weights, null);
});

Deno.test("case-insensitive, generic W{b}A{a}, targets kept", () => {
  assertEquals(presetScheme("fp8_dynamic", ["re:.*proj$"]).targets, ["re:.*proj$"]);
  assert(isPresetName("w4a16_asym"));
  for (const name of ["W2A16", "W3A16", "W5A8", "W4A4", "W6A8", "W2A4"]) {
    assert(isPresetName(name), name);
  }
  for (const name of ["W8A4", "W9A16", "W1A16", "W4A2", "W4A32", "INT4"]) {
    assert(!isPresetName(name), name);
  }
  const w3 = presetScheme("w3a16", ["Linear"]);
  assertEquals([w3.weights?.numBits, w3.weights?.groupSize, w3.inputActivations], [3, 128, null]);
  const w4a4 = presetScheme("W4A4", ["Linear"]);
  assertEquals([w4a4.inputActivations?.numBits, w4a4.inputActivations?.strategy], [4, "token"]);
  // Explicit definitions win over the generic template.
  assertEquals(presetScheme("W8A16", ["Linear"]).weights?.strategy, "channel");
});

Deno.test("unknown preset lists the known ones", () => {
  const e = assertThrows(
    () => presetScheme("W4A16_GPTQ", ["Linear"]),
    UnknownPresetError,
    "W4A16_GPTQ",
  );
  assert(e instanceof QuantizationConfigError);
  for (const n of PRESET_NAMES) assert(e.message.includes(n), n);
});
