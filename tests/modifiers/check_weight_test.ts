import { assertThrows } from "../oneshot/_assert.ts";
import { checkWeightQuantizable } from "../../src/modifiers/quantization/check_weight.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { QuantizationConfigError, QuantizationShapeError } from "../../src/quant/errors.ts";
import { presetScheme } from "../../src/quant/presets.ts";

const DOWN = "model.layers.0.mlp.down_proj";

Deno.test("shapes a scheme cannot quantize are named with the module", () => {
  assertThrows(
    () => checkWeightQuantizable(DOWN, [64, 172], presetScheme("W4A16", ["Linear"]).weights!),
    QuantizationShapeError,
    `${DOWN}: 172 columns (in_features) are not divisible by group_size 128`,
  );
  assertThrows(
    () => checkWeightQuantizable(DOWN, [64, 172], presetScheme("NVFP4A16", ["Linear"]).weights!),
    QuantizationShapeError,
    "group_size 16",
  );
  assertThrows(
    () =>
      checkWeightQuantizable(
        DOWN,
        [64, 171],
        parseQuantizationArgs({ num_bits: 4, type: "float", strategy: "channel" }, "w"),
      ),
    QuantizationShapeError,
    "in_features must be even, got 171",
  );
  assertThrows(
    () => checkWeightQuantizable(DOWN, [200, 256], presetScheme("FP8_BLOCK", ["Linear"]).weights!),
    QuantizationShapeError,
    "block_structure [128, 128] does not tile the weight [200, 256]",
  );
  assertThrows(
    () => checkWeightQuantizable(DOWN, [64], presetScheme("W8A16", ["Linear"]).weights!),
    QuantizationShapeError,
    "2-D",
  );
});

Deno.test("args that cannot quantize a weight are refused", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ num_bits: 8, strategy: "token", dynamic: true }, "applies to activations"],
    [{ num_bits: 8, strategy: "tensor", dynamic: true }, "cannot be quantized dynamically"],
    [{ num_bits: 16 }, "wider than 8 bits"],
    [{ num_bits: 4, type: "float", symmetric: false }, "asymmetric FP4"],
  ];
  for (const [raw, text] of cases) {
    assertThrows(
      () =>
        checkWeightQuantizable(DOWN, [64, 64], parseQuantizationArgs(raw, "w", { warn: () => {} })),
      QuantizationConfigError,
      text,
    );
  }
  for (const preset of ["W8A16", "FP8_DYNAMIC", "NVFP4A16", "MXFP4A16", "W8A8"]) {
    checkWeightQuantizable(DOWN, [64, 64], presetScheme(preset, ["Linear"]).weights!);
  }
});
