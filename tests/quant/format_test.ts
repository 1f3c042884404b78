import { assertEquals } from "./_assert.ts";
import { globalFormat, inferFormat, moduleFormat } from "../../src/quant/format.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { parseQuantizationScheme } from "../../src/quant/scheme.ts";

const p = (name: string) => presetScheme(name, ["Linear"]);

Deno.test("format inference table (compressed-tensors test_infer_quant)", () => {
  assertEquals(inferFormat(p("W8A8")), "int-quantized");
  assertEquals(inferFormat(p("W8A16")), "pack-quantized");
  assertEquals(inferFormat(p("W4A16")), "pack-quantized");
  assertEquals(inferFormat(p("W4A16_ASYM")), "pack-quantized");
  assertEquals(inferFormat(p("W4A16"), "2:4"), "marlin-24");
  assertEquals(inferFormat(p("W8A16"), "2:4"), "marlin-24");
  assertEquals(inferFormat(p("W4A16"), "unstructured"), "pack-quantized");
  assertEquals(inferFormat(p("FP8")), "float-quantized");
  assertEquals(inferFormat(p("FP8_DYNAMIC")), "float-quantized");
  assertEquals(inferFormat(p("FP8_BLOCK")), "float-quantized");
  assertEquals(inferFormat(p("W4A8")), "int-quantized");
  assertEquals(inferFormat(p("W4AFP8")), "int-quantized");
  assertEquals(inferFormat(p("NVFP4")), "nvfp4-pack-quantized");
  assertEquals(inferFormat(p("NVFP4A16")), "nvfp4-pack-quantized");
  assertEquals(inferFormat(p("MXFP4")), "mxfp4-pack-quantized");
  assertEquals(inferFormat(p("MXFP4A16")), "mxfp4-pack-quantized");
  assertEquals(inferFormat(p("W3A16")), "naive-quantized");
  assertEquals(inferFormat(p("UNQUANTIZED")), null);
  const fp8WeightOnly = parseQuantizationScheme(
    { targets: ["Linear"], weights: { num_bits: 8, type: "float", strategy: "channel" } },
    "g",
  );
  assertEquals(inferFormat(fp8WeightOnly), "naive-quantized");
  // tensor-strategy int4 with 2:4 is not marlin-24 (only channel/group)
  const t = parseQuantizationScheme({ targets: ["Linear"], weights: { num_bits: 4 } }, "g");
  assertEquals(inferFormat(t, "2:4"), "pack-quantized");
});

Deno.test("override and scheme format win; global format", () => {
  const s = parseQuantizationScheme({
    targets: ["Linear"],
    weights: { num_bits: 4 },
    format: "naive-quantized",
  }, "g");
  assertEquals(moduleFormat(s), "naive-quantized");
  assertEquals(moduleFormat(s, { override: "dense" }), "dense");
  assertEquals(globalFormat(["pack-quantized", null, "pack-quantized"]), "pack-quantized");
  assertEquals(globalFormat(["pack-quantized", "float-quantized"]), "mixed-precision");
  assertEquals(globalFormat([null]), "dense");
});
