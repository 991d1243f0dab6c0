/* The console header's account menu (a native <details class="account-menu">, see
   identity/admin/templates/admin_base.html) also closes on Escape, focus going back to its
   summary, and on a click or a focus anywhere outside it. Progressive enhancement only:
   without this script the menu still opens and closes by its summary. Served from /static/
   (the Content-Security-Policy allows no inline script). */
"use strict";

for (const menu of document.querySelectorAll("details.account-menu")) {
  const summary = menu.querySelector("summary");

  // Escape, wherever focus is: close, and put focus back on the summary that opened it.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false; // removes the `open` attribute
      summary.focus();
    }
  });

  // A click or a focus (Tab past its last entry) outside the menu closes it.
  const closeOutside = (event) => {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  };
  document.addEventListener("click", closeOutside);
  document.addEventListener("focusin", closeOutside);
}
