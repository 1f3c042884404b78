/** The example recipes of SPEC §3.9, as written there (shared by several tests). */
export const SPEC_EXAMPLES: Record<string, string> = {
  "w4a16_actorder_group": `
quant_stage:
  quant_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      actorder: "group"
      config_groups:
        group_0:
          weights:
            num_bits: 4
            type: "int"
            symmetric: true
            strategy: "group"
            group_size: 128
          targets: ["Linear"]
`,
  "smoothquant_gptq_w8a8": `
quant_stage:
  quant_modifiers:
    SmoothQuantModifier:
      smoothing_strength: 0.8
      mappings:
      - - ['re:.*q_proj', 're:.*k_proj', 're:.*v_proj']
        - re:.*input_layernorm
      - - ['re:.*gate_proj', 're:.*up_proj']
        - re:.*post_attention_layernorm
    GPTQModifier:
      targets: ["Linear"]
      ignore: [lm_head]
      scheme: W8A8
`,
  "w8a8_static_asym": `
quant_stage:
  quant_modifiers:
    SmoothQuantModifier:
      smoothing_strength: 0.8
    GPTQModifier:
      ignore: [lm_head]
      actorder: null
      config_groups:
        group_0:
          weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}
          input_activations: {num_bits: 8, symmetric: false, dynamic: false, strategy: tensor, type: int}
          targets: [Linear]
`,
  "fp8_kv_cache": `
quant_stage:
    quant_modifiers:
        QuantizationModifier:
            ignore: ["lm_head"]
            config_groups:
                group_0:
                    weights: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
                    input_activations: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
                    targets: ["Linear"]
            kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
`,
  "2of4_w4a16_group128": `
sparsity_stage:
  sparsity_modifiers:
    SparseGPTModifier:
      sparsity: 0.5
      mask_structure: "2:4"
      targets: ["Linear"]
      ignore: ["re:.*lm_head"]
quantization_stage:
  quantization_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: "int", symmetric: true, strategy: "group", group_size: 128}
          targets: ["Linear"]
`,
  "sparse_24_fp8": `
pruning_stage:
  obcq_modifiers:
    SparseGPTModifier:
      sparsity: 0.5
      mask_structure: "2:4"
      targets: ["Linear"]
      ignore: ["re:.*lm_head"]
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 8, type: float, strategy: channel, dynamic: false, symmetric: true}
          input_activations: {num_bits: 8, type: float, strategy: token, dynamic: true, symmetric: true}
          targets: ["Linear"]
`,
};
