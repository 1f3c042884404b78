/**
 * A model's chat template, rendered as transformers'
 * `apply_chat_template(messages, tokenize=False)` renders it, with
 * `@huggingface/jinja` (Hugging Face's own JavaScript Jinja).
 *
 * @module
 */

import { Template } from "@huggingface/jinja";
import { joinPath } from "../io/_path.ts";
import { DatasetError } from "./dataset_error.ts";

/** One chat message, as `messages`-style datasets hold them. */
export interface ChatMessage {
  /** `system`, `user`, `assistant`, … */
  readonly role: string;
  /** The text. */
  readonly content: string;
}

/** A chat template and the special tokens it may refer to. */
export interface ChatTemplate {
  /** The Jinja source. */
  readonly source: string;
  /** Where it came from, for messages. */
  readonly file: string;
  /** `bos_token`, `eos_token`, `unk_token`, `pad_token` as strings (from tokenizer_config.json). */
  readonly specialTokens: Readonly<Record<string, string>>;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new DatasetError(`${path}: cannot read: ${(e as Error).message}`, { cause: e });
  }
}

function parseJson(text: string, path: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text);
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v;
  } catch (cause) {
    throw new DatasetError(`${path}: not valid JSON: ${(cause as Error).message}`, { cause });
  }
  throw new DatasetError(`${path}: expected a JSON object`);
}

/** `chat_template` as transformers stores it: a string, or named templates (use "default"). */
function templateOf(value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const pick = named.find((t) => t?.name === "default") ?? named[0];
    if (typeof pick?.template === "string") return pick.template;
  }
  throw new DatasetError(`${path}: chat_template must be a string or a list of {name, template}`);
}

function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (
    typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

/**
 * Loads a model folder's chat template: `chat_template.jinja`, else
 * `chat_template.json`, else the `chat_template` of `tokenizer_config.json`
 * (the order transformers prefers them in); else the fallback, if given
 * (a named dataset's default, as llm-compressor's ultrachat sets one).
 *
 * @param dir the model folder
 * @param fallback a template to use when the model has none, and its name for messages
 * @returns the template, or null when the model has none and there is no fallback
 * @throws {DatasetError} for a template file that cannot be read or understood
 * @example
 * ```ts
 * import { loadChatTemplate } from "./chat_template.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({
 *   eos_token: "</s>", chat_template: "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
 * }));
 * (await loadChatTemplate(dir))?.specialTokens.eos_token; // "</s>"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadChatTemplate(
  dir: string,
  fallback?: { source: string; name: string },
): Promise<ChatTemplate | null> {
  const cfgPath = joinPath(dir, "tokenizer_config.json");
  const cfgText = await readOptional(cfgPath);
  const cfg = cfgText === null ? {} : parseJson(cfgText, cfgPath);
  const specialTokens: Record<string, string> = {};
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const t = tokenText(cfg[k]);
    if (t !== null) specialTokens[k] = t;
  }
  const jinjaPath = joinPath(dir, "chat_template.jinja");
  const jinja = await readOptional(jinjaPath);
  if (jinja !== null) return { source: jinja, file: jinjaPath, specialTokens };
  const jsonPath = joinPath(dir, "chat_template.json");
  const json = await readOptional(jsonPath);
  if (json !== null) {
    const t = templateOf(parseJson(json, jsonPath).chat_template, jsonPath);
    if (t !== null) return { source: t, file: jsonPath, specialTokens };
  }
  const t = templateOf(cfg.chat_template, cfgPath);
  if (t !== null) return { source: t, file: cfgPath, specialTokens };
  return fallback === undefined
    ? null
    : { source: fallback.source, file: fallback.name, specialTokens };
}

/**
 * Renders a conversation with a chat template, as
 * `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`:
 * the context holds `messages`, `add_generation_prompt`, the special tokens
 * and `raise_exception`.
 *
 * @param template the template
 * @param messages the conversation
 * @param options `addGenerationPrompt` (default false)
 * @returns the rendered text
 * @throws {DatasetError} naming the template file when it fails to parse, render or raises
 * @example
 * ```ts
 * import { renderChatTemplate } from "./chat_template.ts";
 * const chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
 * renderChatTemplate({ source: chatml, file: "inline", specialTokens: {} }, [
 *   { role: "user", content: "Hi" },
 * ]); // "<|im_start|>user\nHi<|im_end|>\n"
 * ```
 */
export function renderChatTemplate(
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  options: { addGenerationPrompt?: boolean } = {},
): string {
  let compiled: Template;
  try {
    compiled = new Template(template.source);
  } catch (cause) {
    throw new DatasetError(
      `${template.file}: the chat template does not parse: ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    return compiled.render({
      ...template.specialTokens,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      // raise_exception is one of @huggingface/jinja's own globals, as in transformers.
    });
  } catch (cause) {
    if (cause instanceof DatasetError) throw cause;
    throw new DatasetError(
      `${template.file}: rendering the chat template failed: ${(cause as Error).message}`,
      { cause },
    );
  }
}
