// datakube portal: copy-to-clipboard buttons. A button `class="copy" data-copy="ID"` copies
// the text of the element with that id. No other script runs on the pages.
(function () {
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.style.position = 'fixed';
      area.style.opacity = '0';
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error('copy failed')); }
    });
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest ? ev.target.closest('button.copy') : null;
    if (!b) { return; }
    var el = document.getElementById(b.getAttribute('data-copy'));
    if (!el) { return; }
    var label = b.getAttribute('data-label') || b.textContent;
    b.setAttribute('data-label', label);
    copyText(el.textContent.trim()).then(function () {
      b.textContent = b.getAttribute('data-done') || '✓';
    }, function () {
      var r = document.createRange();
      r.selectNodeContents(el);
      var s = window.getSelection();
      s.removeAllRanges();
      s.addRange(r);
    });
    window.setTimeout(function () { b.textContent = label; }, 2500);
  });
})();
