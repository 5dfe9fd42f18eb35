// Copy buttons: <button class="copy" data-copy="text">. Nothing else.
//
// The clipboard API exists only in secure contexts (HTTPS, localhost);
// the console is often reached over plain HTTP on an internal name. There,
// or when the browser refuses, Copy selects the text and says to press
// Ctrl+C (Cmd+C on a Mac).
(function () {
  function note(b, text) {
    var n = b.nextElementSibling;
    if (!n || !n.classList.contains('copy-note')) {
      n = document.createElement('span');
      n.className = 'copy-note';
      n.setAttribute('role', 'status');
      b.after(n);
    }
    n.textContent = text;
  }

  // selectText selects the text to copy: the <code> showing it next to
  // the button when there is one, else a read-only field added for it.
  function selectText(b, text) {
    var code = b.previousElementSibling;
    if (code && code.tagName === 'CODE' && code.textContent.trim() === text) {
      var range = document.createRange();
      range.selectNodeContents(code);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      return;
    }
    var f = b.parentNode.querySelector('input.copy-text');
    if (!f) {
      f = document.createElement('input');
      f.type = 'text';
      f.readOnly = true;
      f.className = 'copy-text';
      f.setAttribute('aria-label', 'Text to copy');
      b.after(f);
    }
    f.value = text;
    f.focus();
    f.select();
  }

  function fallback(b, text) {
    selectText(b, text);
    var mac = /Mac|iPhone|iPad/.test(navigator.platform || '');
    note(b, 'Selected: press ' + (mac ? 'Cmd+C' : 'Ctrl+C') + ' to copy.');
  }

  document.addEventListener('click', function (e) {
    var b = e.target.closest('button.copy');
    if (!b) return;
    var text = b.dataset.copy;
    if (!navigator.clipboard || !window.isSecureContext) {
      fallback(b, text);
      return;
    }
    navigator.clipboard.writeText(text).then(function () {
      var t = b.textContent; b.textContent = 'Copied'; setTimeout(function () { b.textContent = t; }, 1500);
    }, function () { fallback(b, text); });
  });
})();
