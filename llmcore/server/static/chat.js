"use strict";
// The chat page: sends the conversation to /v1/chat/completions with stream=true, shows the reply
// as it arrives (rendered as markdown), and stops it on demand (AbortController closes the stream,
// which frees the server's slot at once). A server with a multimodal projector (/v1/models lists the
// "multimodal" capability) also takes a picture with the next message, sent as a data URL image part.
const $ = (id) => document.getElementById(id);
const conversation = []; // { role, content } of the turns so far
let controller = null; // the running request's AbortController
let picture = null; // the data URL of the image the next message carries

function setStatus(text) { $("status").textContent = text; }

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
}

function addMessage(role) {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  $("messages").append(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function requestHeaders() {
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

// The data of each server-sent event in a fetch response body.
async function* sseData(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) yield data;
    }
  }
}

function attach(url, name) {
  picture = url;
  $("attached").textContent = url ? `image: ${name}` : "";
  $("attached").hidden = !url;
  if (!url) $("image").value = "";
}

async function send(text) {
  const content = picture ? [{ type: "text", text }, { type: "image_url", image_url: { url: picture } }] : text;
  conversation.push({ role: "user", content });
  const question = addMessage("user");
  question.textContent = text;
  if (picture) {
    const img = document.createElement("img");
    img.src = picture;
    img.alt = $("attached").textContent;
    question.append(img);
  }
  attach(null);
  const bubble = addMessage("assistant");
  bubble.classList.add("streaming");
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...conversation);
  let reply = "";
  controller = new AbortController();
  setBusy(true);
  setStatus("generating…");
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: requestHeaders(),
      signal: controller.signal,
      body: JSON.stringify({
        messages, stream: true,
        temperature: Number($("temperature").value), max_tokens: Number($("max-tokens").value),
      }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error?.message || `HTTP ${response.status}`);
    }
    for await (const data of sseData(response.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        reply += delta;
        bubble.innerHTML = Markdown.render(reply);
        bubble.scrollIntoView({ block: "end" });
      }
      if (chunk.timings) {
        const t = chunk.timings;
        setStatus(`${t.predicted_n} tokens, ${t.predicted_per_second.toFixed(1)} tokens/s`);
      }
    }
  } catch (error) {
    if (error.name === "AbortError") {
      setStatus("stopped");
    } else {
      bubble.classList.add("error");
      bubble.textContent = `Error: ${error.message}`;
      setStatus("");
    }
  } finally {
    bubble.classList.remove("streaming");
    if (reply) conversation.push({ role: "assistant", content: reply });
    else conversation.pop(); // no reply: the question is not part of the conversation
    controller = null;
    setBusy(false);
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller?.abort());
$("image").addEventListener("change", () => {
  const file = $("image").files[0];
  if (!file) return attach(null);
  const reader = new FileReader();
  reader.onload = () => attach(reader.result, file.name);
  reader.readAsDataURL(file);
});
$("clear").addEventListener("click", () => {
  conversation.length = 0;
  attach(null);
  $("messages").replaceChildren();
  setStatus("");
});
$("api-key").value = localStorage.getItem("llmcore-api-key") || "";
$("api-key").addEventListener("change", () => localStorage.setItem("llmcore-api-key", $("api-key").value.trim()));

fetch("/v1/models").then((r) => r.json()).then((body) => {
  $("model").textContent = body.data?.[0]?.id || "";
  $("attach").hidden = !body.models?.[0]?.capabilities?.includes("multimodal");
}).catch(() => {});
