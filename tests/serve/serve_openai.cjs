// serve_openai.cjs - the official OpenAI Node client against `internvl serve` (run by
// serve_openai.sh): models, plain and streamed completions with an image, a two-turn
// conversation with the image in the first turn (the first turn's KV blocks reused:
// usage.prompt_tokens_details.cached_tokens), errors as the client's typed exceptions,
// an aborted stream. Env: OPENAI_DIR (where `npm install openai` put node_modules), URL,
// MODEL_ID, IMG, Q, Q2, WANT, WANT2 (what `internvl chat` printed for the two turns).
const path = require('path');
const fs = require('fs');
const assert = require('assert');
const OpenAI = require(path.join(process.env.OPENAI_DIR, 'node_modules', 'openai'));
const env = process.env;

async function main() {
  // Node's own fetch (undici), not the client's default node-fetch@2.7.0: that reports a false
  // "Premature close" after every chunked (streamed) response on a kept-alive socket on Node
  // builds with the CVE-2026-48931 http.Agent fix, which includes Debian 12's nodejs
  // 18.20.4+dfsg-1~deb12u3 (node-fetch issue 1767, nodejs issue 63989); the server's responses
  // are complete. `fetch` is the v4 client's documented option; later majors use Node's fetch.
  const client = new OpenAI({ baseURL: env.URL + '/v1', apiKey: 'none', maxRetries: 0, timeout: 120000,
                              fetch: globalThis.fetch });
  const models = await client.models.list();
  assert.deepStrictEqual(models.data.map((m) => m.id), [env.MODEL_ID]);
  console.log('ok   models.list:', env.MODEL_ID);

  const url = 'data:image/jpeg;base64,' + fs.readFileSync(env.IMG).toString('base64');
  const first = { role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: env.Q }] };
  const params = { model: env.MODEL_ID, temperature: 0, max_tokens: 12, max_tiles: 2 };

  const r = await client.chat.completions.create({ ...params, messages: [first] });
  assert.strictEqual(r.object, 'chat.completion');
  assert.strictEqual(r.choices[0].message.content, env.WANT);
  assert.strictEqual(r.choices[0].finish_reason, 'length');
  assert.strictEqual(r.usage.completion_tokens, 12);
  console.log('ok   chat.completions.create with an image = internvl chat; usage', JSON.stringify(r.usage));

  const stream = await client.chat.completions.create({ ...params, messages: [first], stream: true,
                                                        stream_options: { include_usage: true } });
  let text = '', chunks = 0, usage = null;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) text += ch.delta.content || '';
  }
  assert.strictEqual(text, env.WANT);
  assert.ok(usage && usage.completion_tokens === 12);
  console.log(`ok   streamed (${chunks} chunks) = internvl chat`);

  const r2 = await client.chat.completions.create({ ...params, max_tokens: 10, messages: [
    first, { role: 'assistant', content: env.WANT1 }, { role: 'user', content: env.Q2 }] });
  assert.strictEqual(r2.choices[0].message.content, env.WANT2);
  const cached = r2.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0 && cached < r2.usage.prompt_tokens, `cached_tokens ${cached}`);
  console.log(`ok   second turn (image in the first) = internvl chat; ${cached} of ${r2.usage.prompt_tokens} prompt tokens from the prefix cache`);

  async function expectError(name, status, cls, body) {
    try {
      await client.chat.completions.create(body);
    } catch (e) {
      assert.ok(e instanceof cls, `${name}: ${e.constructor.name}`);
      assert.strictEqual(e.status, status, name);
      assert.ok(e.error && e.error.message, name);
      console.log(`ok   ${name} -> ${e.constructor.name} ${e.status}: ${e.error.message.slice(0, 90)}`);
      return;
    }
    assert.fail(`${name}: no error`);
  }
  const hi = [{ role: 'user', content: 'hi' }];
  await expectError('n = 2', 400, OpenAI.BadRequestError, { model: env.MODEL_ID, messages: hi, n: 2 });
  await expectError('unknown model', 404, OpenAI.NotFoundError, { model: 'gpt-4o', messages: hi });
  await expectError('max_tokens -1', 400, OpenAI.BadRequestError, { model: env.MODEL_ID, messages: hi, max_tokens: -1 });
  await expectError('bad base64', 400, OpenAI.BadRequestError, { model: env.MODEL_ID, messages: [
    { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,%%%' } }] }] });
  await expectError('http image URL', 400, OpenAI.BadRequestError, { model: env.MODEL_ID, messages: [
    { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] });

  // An aborted stream: the server cancels the sequence.
  const ac = new AbortController();
  const long = await client.chat.completions.create({ ...params, max_tokens: 30000, messages: [first], stream: true },
                                                    { signal: ac.signal });
  let got = 0;
  try {
    for await (const c of long) { if (++got === 20) ac.abort(); }
  } catch (e) { /* the abort */ }
  let cancelled = false;
  for (let i = 0; i < 100 && !cancelled; i++) {
    const m = await (await fetch(env.URL + '/metrics')).text();
    cancelled = /^ivl_serve_cancelled_total 1$/m.test(m) && /^ivl_serve_running_sequences 0$/m.test(m);
    if (!cancelled) await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(cancelled, 'the aborted stream was not cancelled');
  console.log(`ok   stream aborted after ${got} chunks: the server cancelled the sequence`);
  const again = await client.chat.completions.create({ ...params, messages: [first] });
  assert.strictEqual(again.choices[0].message.content, env.WANT);
  console.log('ok   still serving the same answer');
}

main().then(() => console.log('all serve_openai checks passed'),
            (e) => { console.error('FAIL:', e && e.stack || e); process.exit(1); });
