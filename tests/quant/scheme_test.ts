import { assertEquals, assertThrows } from "./_assert.ts";
import { parseQuantizationScheme, quantizationSchemeToJson } from "../../src/quant/scheme.ts";
import { QuantizationConfigError } from "../../src/quant/errors.ts";

const quiet = { warn: () => {} };

Deno.test("scheme validation (§1.2.2)", () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ weights: {} }, "g.targets: expected a list"],
    [{ targets: "Linear" }, "g.targets: expected a list"],
    [{ targets: ["Linear"], extra: 1 }, "g.extra: unknown field"],
    [
      { targets: ["Linear"], input_activations: { strategy: "channel" } },
      "g.input_activations.strategy",
    ],
    [
      { targets: ["Linear"], input_activations: { group_size: 8, actorder: "group" } },
      "g.input_activations.actorder",
    ],
    [
      { targets: ["Linear"], output_activations: { group_size: 8, actorder: "group" } },
      "g.output_activations.actorder",
    ],
    [{ targets: ["Linear"], format: "mixed-precision" }, "g.format: mixed-precision"],
    [{ targets: ["Linear"], format: "int4" }, "g.format: unknown compression format"],
    [{ targets: ["Linear"], weights: { num_bits: 4, strategy: "token" } }, "g.weights.dynamic"],
  ];
  for (const [raw, msg] of bad) {
    assertThrows(() => parseQuantizationScheme(raw, "g", quiet), QuantizationConfigError, msg);
  }
});

Deno.test("group-size mismatch between weights and inputs only warns", () => {
  const warnings: string[] = [];
  parseQuantizationScheme(
    {
      targets: ["Linear"],
      weights: { group_size: 64 },
      input_activations: { group_size: 128, dynamic: true },
    },
    "g",
    { warn: (m) => warnings.push(m) },
  );
  assertEquals(warnings.length, 1);
});

Deno.test("JSON round trip", () => {
  const raw = {
    targets: ["Linear", "re:.*gate$"],
    weights: { num_bits: 4, group_size: 128, symmetric: false },
    input_activations: null,
    output_activations: null,
    format: "pack-quantized",
  };
  const j = quantizationSchemeToJson(parseQuantizationScheme(raw, "g"));
  assertEquals(j.targets, raw.targets);
  assertEquals(j.format, "pack-quantized");
  assertEquals(quantizationSchemeToJson(parseQuantizationScheme(j, "g")), j);
});
