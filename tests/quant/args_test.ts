import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  canonicalActorder,
  parseQuantizationArgs,
  quantizationArgsEqual,
  quantizationArgsToJson,
} from "../../src/quant/args.ts";
import { QuantizationConfigError } from "../../src/quant/errors.ts";

const quiet = { warn: () => {} };
const parse = (raw: unknown) => parseQuantizationArgs(raw, "group_0.weights", quiet);

Deno.test("defaults: int8 symmetric tensor, static, minmax, int8 zero points", () => {
  const a = parse({});
  assertEquals(a.numBits, 8);
  assertEquals(a.type, "int");
  assertEquals(a.symmetric, true);
  assertEquals(a.strategy, "tensor");
  assertEquals(a.dynamic, false);
  assertEquals(a.observer, "minmax");
  assertEquals(a.zpDtype, "int8");
  assertEquals(a.actorder, null);
  assertEquals(a.observerKwargs, {});
});

Deno.test("strategy inference from group_size", () => {
  assertEquals(parse({ group_size: 128 }).strategy, "group");
  assertEquals(parse({ group_size: -1 }).strategy, "channel");
  assertEquals(parse({ group_size: null }).strategy, "tensor");
  assertThrows(
    () => parse({ group_size: 0 }),
    QuantizationConfigError,
    "group_0.weights.group_size",
  );
  assertThrows(() => parse({ group_size: -2 }), QuantizationConfigError, "invalid group size -2");
});

Deno.test("enums are case-insensitive; actorder aliases and booleans keep their meaning", () => {
  const a = parse({ type: "FLOAT", strategy: "Channel" });
  assertEquals([a.type, a.strategy], ["float", "channel"]);
  assertEquals(parse({ group_size: 8, actorder: true }).actorder, "group");
  assertEquals(parse({ group_size: 8, actorder: false }).actorder, null);
  assertEquals(parse({ group_size: 8, actorder: "Static" }).actorder, "static");
  assertEquals(canonicalActorder("static"), "weight");
  assertEquals(canonicalActorder("dynamic"), "group");
  assertEquals(
    quantizationArgsToJson(parse({ group_size: 8, actorder: "static" })).actorder,
    "static",
  );
});

Deno.test("every post-validation rule raises with where + field", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ strategy: "token" }, "group_0.weights.dynamic: cannot perform static token"],
    [{ strategy: "group" }, "group_0.weights.group_size: strategy group requires"],
    [{ strategy: "tensor_group" }, "tensor_group requires group_size"],
    [{ strategy: "channel", group_size: 32 }, "requires strategy 'group'"],
    [{ strategy: "block" }, "group_0.weights.block_structure: strategy block requires"],
    [{ block_structure: [128, 128] }, "block_structure requires strategy 'block'"],
    [{ strategy: "channel", actorder: "group" }, "group_0.weights.actorder"],
    [{ strategy: "channel", dynamic: true }, "dynamic quantization needs one of"],
    [
      { strategy: "tensor", dynamic: "local" },
      '"local" is only supported for strategy tensor_group',
    ],
    [{ type: "float", num_bits: 6 }, "float quantization supports 4 or 8 bits"],
    [{ num_bits: "4" }, "group_0.weights.num_bits: expected a positive integer"],
    [{ symmetric: "yes" }, "group_0.weights.symmetric"],
    [{ type: "nf4" }, "group_0.weights.type"],
    [{ strategy: "row" }, "group_0.weights.strategy"],
    [{ dynamic: "yes" }, "group_0.weights.dynamic"],
    [{ actorder: "random" }, "group_0.weights.actorder"],
    [{ scale_dtype: "torch.complex64" }, "group_0.weights.scale_dtype: no such torch dtype"],
    [
      { block_structure: "128by128", strategy: "block" },
      "group_0.weights.block_structure: invalid",
    ],
    [{ block_structure: [128], strategy: "block" }, "block_structure"],
    [{ numbits: 4 }, "group_0.weights.numbits: unknown field"],
  ];
  for (const [raw, msg] of cases) {
    assertThrows(() => parse(raw), QuantizationConfigError, msg);
  }
  assertThrows(() => parse([1]), QuantizationConfigError, "expected a mapping");
});

Deno.test("dynamic: observer dropped for dynamic true (warning), minmax default for local", () => {
  const warnings: string[] = [];
  const a = parseQuantizationArgs(
    { strategy: "token", dynamic: true, observer: "minmax" },
    "x",
    { warn: (m) => warnings.push(m) },
  );
  assertEquals(a.observer, null);
  assertEquals(warnings.length, 1);
  parseQuantizationArgs({ strategy: "token", dynamic: true, observer: "memoryless" }, "x", {
    warn: (m) => warnings.push(m),
  });
  assertEquals(warnings.length, 1, "no warning for the legacy 'memoryless'");
  const l = parse({
    type: "float",
    num_bits: 4,
    strategy: "tensor_group",
    group_size: 16,
    dynamic: "LOCAL",
  });
  assertEquals(l.dynamic, "local");
  assertEquals(l.observer, "minmax");
  assertEquals(parse({ observer: "mse" }).observer, "mse");
});

Deno.test("zp_dtype inference and serialisation", () => {
  assertEquals(
    parse({ type: "float", num_bits: 4, strategy: "tensor_group", group_size: 16 }).zpDtype,
    "float8_e4m3fn",
  );
  assertEquals(parse({ type: "float" }).zpDtype, "float8_e4m3fn");
  assertEquals(parse({ num_bits: 4 }).zpDtype, "int8");
  assertEquals(parse({ num_bits: 12 }).zpDtype, "int16");
  assertEquals(parse({ num_bits: 20 }).zpDtype, "int32");
  assertEquals(quantizationArgsToJson(parse({ num_bits: 4 })).zp_dtype, null);
  assertEquals(
    quantizationArgsToJson(parse({ num_bits: 4, symmetric: false })).zp_dtype,
    "torch.int8",
  );
  const nv = parse({
    num_bits: 4,
    type: "float",
    strategy: "tensor_group",
    group_size: 16,
    scale_dtype: "float8_e4m3fn",
    zp_dtype: "torch.float8_e4m3fn",
  });
  assertEquals(quantizationArgsToJson(nv).scale_dtype, "torch.float8_e4m3fn");
  assertEquals(parse({ scale_dtype: "torch.half" }).scaleDtype, "float16");
});

Deno.test("serialisation has exactly compressed-tensors' keys; omitNullDtypes drops null dtypes", () => {
  const j = quantizationArgsToJson(parse({ num_bits: 4, strategy: "channel" }));
  assertEquals(Object.keys(j).sort(), [
    "actorder",
    "block_structure",
    "dynamic",
    "group_size",
    "num_bits",
    "observer",
    "observer_kwargs",
    "scale_dtype",
    "strategy",
    "symmetric",
    "type",
    "zp_dtype",
  ]);
  const o = quantizationArgsToJson(parse({ num_bits: 4 }), { omitNullDtypes: true });
  assert(!("scale_dtype" in o) && !("zp_dtype" in o));
  const asym = quantizationArgsToJson(parse({ num_bits: 4, symmetric: false }), {
    omitNullDtypes: true,
  });
  assertEquals(asym.zp_dtype, "torch.int8");
  assert(!("scale_dtype" in asym));
});

Deno.test("round trip: parse(toJson(args)) equals args", () => {
  const raws = [
    { num_bits: 4, group_size: 128, actorder: "weight" },
    { num_bits: 8, type: "float", strategy: "block", block_structure: "128x64" },
    { num_bits: 8, type: "float", strategy: "token", dynamic: true },
    {
      num_bits: 4,
      symmetric: false,
      strategy: "channel",
      observer: "mse",
      observer_kwargs: { norm: 2 },
    },
  ];
  for (const raw of raws) {
    const a = parse(raw);
    const back = parse(quantizationArgsToJson(a));
    assert(quantizationArgsEqual(a, back), JSON.stringify(raw));
  }
  assertEquals(parse({ strategy: "block", block_structure: "128x64" }).blockStructure, [128, 64]);
  assert(!quantizationArgsEqual(parse({ num_bits: 4 }), parse({ num_bits: 8 })));
});
