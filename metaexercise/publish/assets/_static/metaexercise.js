// pydata-sphinx-theme 0.17 reads the colour mode from localStorage and logs a console error on a reader's
// first visit, when nothing is stored yet; start in light mode (the book's figures are drawn for print).
if (!document.documentElement.dataset.mode) {
  document.documentElement.dataset.mode = "light";
}

// The book's search. Sphinx's own search page fetches every page it lists to show a summary, which browsers
// refuse when the book is opened from disk (file://), and it never sees the text of tables and captions.
// Here the search page loads _static/metaexercise-search-index.js (written by `metaexercise book`: every
// page's text by section) with a <script> element, which works from disk and over HTTP alike, and lists the
// sections that hold every word of the query, with the words highlighted in a short excerpt.
(function () {
  "use strict";

  const root = () => document.documentElement.dataset.content_root || "./";

  // Lower case without accents, one UTF-16 unit for one (so that positions in the folded text are positions in
  // the text: the excerpt marks what matched).
  const fold = (s) =>
    s.split("").map((c) => {
      const f = c.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
      return f.length === 1 ? f : c;
    }).join("");

  const terms = (query) =>
    [...new Set(fold(query).split(/[^\p{L}\p{N}_]+/u).filter((t) => t.length > 0))];

  function loadIndex() {
    return new Promise((resolve, reject) => {
      if (window.METAEXERCISE_SEARCH) return resolve(window.METAEXERCISE_SEARCH);
      const script = document.createElement("script");
      script.src = root() + "_static/metaexercise-search-index.js";
      script.onload = () => resolve(window.METAEXERCISE_SEARCH || []);
      script.onerror = () => reject(new Error("the search index could not be loaded"));
      document.head.appendChild(script);
    });
  }

  const count = (text, w, most) => {
    let n = 0;
    for (let at = text.indexOf(w); at !== -1 && n < most; at = text.indexOf(w, at + w.length)) n++;
    return n;
  };

  // Every word must occur (in the section's text or its titles); the whole query as a phrase, words in the
  // titles and frequent words rank a section higher.
  function score(entry, words, phrase) {
    const title = fold(entry.title + " " + entry.page_title);
    const text = fold(entry.text);
    let total = 0;
    if (words.length > 1) total += 40 * count(text, phrase, 5) + (title.includes(phrase) ? 60 : 0);
    for (const w of words) {
      const inTitle = title.includes(w);
      const times = count(text, w, 20);
      if (!inTitle && !times) return 0;
      total += (inTitle ? 20 : 0) + times;
    }
    return total;
  }

  // An excerpt of `text` around the first query word, as DOM nodes (text and <mark>), never as HTML.
  function excerpt(text, words, phrase) {
    const folded = fold(text);
    let first = words.length > 1 ? folded.indexOf(phrase) : -1;
    for (const w of first === -1 ? words : []) {
      const at = folded.indexOf(w);
      if (at !== -1 && (first === -1 || at < first)) first = at;
    }
    const start = Math.max(0, first - 80);
    const piece = (start > 0 ? "…" : "") + text.slice(start, start + 240) + (start + 240 < text.length ? "…" : "");
    const foldedPiece = fold(piece);
    const out = document.createElement("p");
    out.className = "context";
    let i = 0;
    while (i < piece.length) {
      let hit = null;
      for (const w of words) {
        if (foldedPiece.startsWith(w, i) && (!hit || w.length > hit.length)) hit = w;
      }
      if (hit) {
        const mark = document.createElement("mark");
        mark.textContent = piece.slice(i, i + hit.length);
        out.appendChild(mark);
        i += hit.length;
      } else {
        let j = i + 1;
        while (j < piece.length && !words.some((w) => foldedPiece.startsWith(w, j))) j++;
        out.appendChild(document.createTextNode(piece.slice(i, j)));
        i = j;
      }
    }
    return out;
  }

  function render(out, query, index) {
    const words = terms(query);
    const heading = document.createElement("h2");
    heading.textContent = "Search results";
    const status = document.createElement("p");
    status.className = "search-summary";
    const list = document.createElement("ul");
    list.className = "search metaexercise-search";
    out.replaceChildren(heading, status, list);
    if (!words.length) {
      status.textContent = "Type a word to search for.";
      return;
    }
    const phrase = words.join(" ");
    const hits = index
      .map((entry, order) => ({ entry, order, score: score(entry, words, phrase) }))
      .filter((h) => h.score > 0)
      .sort((a, b) => b.score - a.score || a.order - b.order);
    const pages = new Set(hits.map((h) => h.entry.page));
    status.textContent = hits.length
      ? `Found ${hits.length} section${hits.length === 1 ? "" : "s"} on ${pages.size} page${pages.size === 1 ? "" : "s"} with every word of “${query}”.`
      : `No page holds every word of “${query}”. Check the spelling, or search for fewer words.`;
    for (const { entry } of hits.slice(0, 100)) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = root() + entry.page + entry.anchor;
      link.textContent = entry.title === entry.page_title ? entry.title : `${entry.title} (${entry.page_title})`;
      item.appendChild(link);
      if (entry.text) item.appendChild(excerpt(entry.text, words, phrase));
      list.appendChild(item);
    }
  }

  function search(query) {
    const out = document.getElementById("search-results");
    if (!out) return;
    loadIndex().then(
      (index) => render(out, query, index),
      (err) => {
        out.textContent = `Search is not available: ${err.message}. Rebuild the book with \`metaexercise book\`.`;
      },
    );
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!document.getElementById("search-results")) return;
    // Sphinx's searchtools.js, loaded after this file, starts its own search on the same event; it calls
    // Search.performSearch, which now is ours (and nothing is fetched).
    if (typeof Search !== "undefined") Search.performSearch = search;
    else {
      const query = new URLSearchParams(window.location.search).get("q");
      if (query) search(query);
    }
  });
})();
