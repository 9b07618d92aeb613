// pydata-sphinx-theme 0.17 reads the colour mode from localStorage and logs a console error on a reader's
// first visit, when nothing is stored yet; start in light mode (the book's figures are drawn for print).
if (!document.documentElement.dataset.mode) {
  document.documentElement.dataset.mode = "light";
}
