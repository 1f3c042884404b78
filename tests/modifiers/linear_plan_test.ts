import { assert, assertEquals } from "../oneshot/_assert.ts";
import { STORIES } from "../oneshot/_helpers.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { planLinearQuantization } from "../../src/modifiers/quantization/linear_plan.ts";
import { presetScheme } from "../../src/quant/presets.ts";

Deno.test("the plan matches ignore first, picks formats and generates upstream's ignore list", async () => {
  const model = await HfModel.open(STORIES);
  try {
    const plan = planLinearQuantization(model, {
      configGroups: { group_0: presetScheme("NVFP4A16", ["Linear"]) },
      ignore: ["lm_head", "re:.*down_proj$", "re:.*nonexistent$"],
    });
    assertEquals(plan.linears.length, 5 * 7 + 1);
    assertEquals(plan.linears.filter((l) => l.scheme !== null).length, 30);
    assertEquals(plan.linears[0].name, "model.layers.0.self_attn.q_proj");
    assertEquals(plan.linears[0].format, "nvfp4-pack-quantized");
    assertEquals(
      plan.linears.at(-1)!.weightTensor,
      "model.embed_tokens.weight",
      "tied lm_head reads the embeddings",
    );
    assert(!plan.untieLmHead);
    assertEquals(plan.quantizationConfig.ignore, [
      ...[0, 1, 2, 3, 4].map((k) => `model.layers.${k}.mlp.down_proj`),
      "lm_head",
    ]);
    assertEquals(plan.unmatched, ["re:.*nonexistent$"]);
  } finally {
    model.close();
  }
});

Deno.test("several groups: the most specific target wins and formats become mixed-precision", async () => {
  const model = await HfModel.open(STORIES);
  try {
    const plan = planLinearQuantization(model, {
      configGroups: {
        group_0: presetScheme("W8A16", ["Linear"]),
        group_1: presetScheme("FP8_DYNAMIC", ["re:.*down_proj$"]),
      },
      ignore: [],
    });
    const down = plan.linears.find((l) => l.name === "model.layers.2.mlp.down_proj")!;
    assertEquals(down.format, "float-quantized");
    assert(plan.untieLmHead, "lm_head is quantized while tied");
    assertEquals(plan.quantizationConfig.format, "mixed-precision");
    assertEquals(Object.keys(plan.quantizationConfig.config_groups as object), [
      "group_0",
      "group_1",
    ]);
  } finally {
    model.close();
  }
});
