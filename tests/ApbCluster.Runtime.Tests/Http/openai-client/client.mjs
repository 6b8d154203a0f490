// Runs one call of the official openai client against a base URL and prints what the client saw,
// as one JSON line: node client.mjs BASE_URL '{"op":"create"|"stream"|"list"|"retrieve", "params":{...}, "id":"..."}'
// An APIError prints {"error":{status, type, code, param, message, request_id}}.
import OpenAI from "openai";

const [baseURL, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60_000 });

async function run() {
  switch (plan.op) {
    case "create": {
      const c = await client.chat.completions.create(plan.params);
      return { content: c.choices[0].message.content, finish_reason: c.choices[0].finish_reason, usage: c.usage, model: c.model };
    }
    case "stream": {
      const stream = await client.chat.completions.create({ ...plan.params, stream: true });
      const deltas = [];
      let finish = null, usage = null, emptyChoiceChunks = 0;
      for await (const chunk of stream) {
        if (chunk.choices.length === 0) emptyChoiceChunks++;
        for (const ch of chunk.choices) {
          if (ch.delta?.content) deltas.push(ch.delta.content);
          if (ch.finish_reason) finish = ch.finish_reason;
        }
        if (chunk.usage) usage = chunk.usage;
      }
      return { content: deltas.join(""), deltas, finish_reason: finish, usage, empty_choice_chunks: emptyChoiceChunks };
    }
    case "list": {
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      return { ids };
    }
    case "retrieve": {
      const m = await client.models.retrieve(plan.id);
      return { id: m.id, object: m.object };
    }
    default:
      throw new Error(`unknown op ${plan.op}`);
  }
}

try {
  console.log(JSON.stringify(await run()));
} catch (e) {
  if (e instanceof OpenAI.APIError) {
    console.log(JSON.stringify({ error: { status: e.status, type: e.type, code: e.code, param: e.param, message: e.message, request_id: e.requestID ?? e.request_id ?? null } }));
  } else {
    console.error(String(e?.stack ?? e));
    process.exit(1);
  }
}
