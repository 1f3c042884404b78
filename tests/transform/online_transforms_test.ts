import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { parseModelConfig } from "../../src/io/model_config.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { parseRecipe } from "../../src/recipe/parse.ts";
import {
  planSpinQuant,
  spinQuantTransformConfig,
} from "../../src/modifiers/spinquant/spinquant_plan.ts";
import { TransformError } from "../../src/transform/errors.ts";
import {
  assertNoOnlineTransforms,
  onlineTransforms,
} from "../../src/transform/online_transforms.ts";
import { SHARED_DIR } from "../_shared.ts";

const STORIES = `${SHARED_DIR}models/stories260K`;

const R4 = {
  type: "hadamard",
  apply: [
    { targets: ["re:.*down_proj$"], location: "input", inverse: false, ignore: [] },
    { targets: ["re:.*down_proj$"], location: "weight_input", inverse: true, ignore: [] },
  ],
  randomize: false,
  requires_grad: false,
  head_dim: null,
  precision: "torch.float64",
};

Deno.test("online transforms in transform_config are refused by llmc's forward; fused ones pass", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    const withGroups = (groups: Record<string, unknown>) =>
      parseModelConfig({
        ...hf.config.raw,
        quantization_config: { transform_config: { config_groups: groups } },
      }, "config.json");
    const plan = planSpinQuant(
      hf.config,
      parseRecipe("quant_stage:\n  quant_modifiers:\n    SpinQuantModifier: {}\n").modifiers[0],
    );
    const fused = spinQuantTransformConfig(hf.config, plan).config_groups as Record<
      string,
      unknown
    >;
    assert.deepEqual(onlineTransforms(withGroups(fused)), []);
    assertNoOnlineTransforms(withGroups(fused));
    assertNoOnlineTransforms(hf.config); // no transform_config at all
    const online = withGroups({ ...fused, R4 });
    assert.deepEqual(onlineTransforms(online), ["R4: input on re:.*down_proj$"]);
    const source = { config: online, has: hf.has.bind(hf), readF32: hf.readF32.bind(hf) };
    await assert.rejects(
      () => DecoderModel.load(source),
      (e) => e instanceof TransformError && e.message.includes("R4: input on re:.*down_proj$"),
    );
  } finally {
    hf.close();
  }
});
