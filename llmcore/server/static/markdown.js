"use strict";
// A small markdown renderer for the chat page. The text is HTML-escaped FIRST, so nothing the model
// writes can become markup except what the rules below produce (links only to http/https URLs).
const Markdown = (() => {
  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ENTITIES[c]);

  // Inline rules over escaped text; code spans are set aside first so nothing inside them changes.
  function inline(text) {
    const codes = [];
    text = text.replace(/`([^`\n]+)`/g, (_, code) => {
      codes.push(`<code>${code}</code>`);
      return `\u0000${codes.length - 1}\u0000`;
    });
    text = text.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g,
      (_, label, url) => `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`);
    text = text.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>").replace(/__([^_\n]+)__/g, "<strong>$1</strong>");
    text = text.replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>").replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>");
    return text.replace(/\u0000(\d+)\u0000/g, (_, i) => codes[Number(i)]);
  }

  function render(source) {
    const lines = escapeHtml(source.replace(/\u0000/g, "")).split("\n");
    const out = [];
    let paragraph = [];
    let list = null; // { tag: "ul" | "ol", items: [] }
    const flushParagraph = () => {
      if (paragraph.length) out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
      paragraph = [];
    };
    const flushList = () => {
      if (list) out.push(`<${list.tag}>${list.items.map((item) => `<li>${inline(item)}</li>`).join("")}</${list.tag}>`);
      list = null;
    };
    const flush = () => { flushParagraph(); flushList(); };
    const addItem = (tag, text) => {
      flushParagraph();
      if (!list || list.tag !== tag) { flushList(); list = { tag, items: [] }; }
      list.items.push(text);
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if ((m = line.match(/^\s*```\s*([\w+-]*)\s*$/))) { // a fenced block runs to its closing fence (or the end, mid-stream)
        flush();
        const body = [];
        for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i]);
        const lang = m[1] ? ` class="language-${m[1]}"` : "";
        out.push(`<pre><code${lang}>${body.join("\n")}</code></pre>`);
      } else if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
        flush();
        out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
      } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush();
        out.push("<hr>");
      } else if ((m = line.match(/^\s*[-*+]\s+(.*)$/))) {
        addItem("ul", m[1]);
      } else if ((m = line.match(/^\s*\d+[.)]\s+(.*)$/))) {
        addItem("ol", m[1]);
      } else if ((m = line.match(/^&gt;\s?(.*)$/))) {
        flush();
        out.push(`<blockquote>${inline(m[1])}</blockquote>`);
      } else if (!line.trim()) {
        flush();
      } else if (list && /^\s{2,}\S/.test(line)) {
        list.items[list.items.length - 1] += " " + line.trim();
      } else {
        flushList();
        paragraph.push(line);
      }
    }
    flush();
    return out.join("\n");
  }

  return { render, escapeHtml };
})();
