/**
 * llmc: compress Hugging Face decoder LLMs into compressed-tensors checkpoints
 * that vLLM serves, as an RxJS dataflow over WebGPU kernels.
 *
 * @module
 */
export { LlmcError } from "./src/errors.ts";
