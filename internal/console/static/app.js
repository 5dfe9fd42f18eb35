// Copy buttons: <button class="copy" data-copy="text">. Nothing else.
document.addEventListener('click', function (e) {
  var b = e.target.closest('button.copy');
  if (!b || !navigator.clipboard) return;
  navigator.clipboard.writeText(b.dataset.copy).then(function () {
    var t = b.textContent; b.textContent = 'Copied'; setTimeout(function () { b.textContent = t; }, 1500);
  });
});
