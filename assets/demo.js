// A jQuery long-poll loop, the legacy way, resuming from the server-rendered id.
(function ($) {
  var channel = document.body.dataset.channel;
  var since = window.announceCurrent.id;
  function poll() {
    $.getJSON("/channels/" + channel + "/status", {since: since}, function (data) {
      since = data.id;
      $("#current").text(data.content).attr("data-id", data.id);
      poll();
    }).fail(function () { setTimeout(poll, 1000); });
  }
  poll();
  $("#publish").on("submit", function (e) {
    e.preventDefault();
    var key = this.key ? this.key.value : "";
    $.ajax({url: "/channels/" + channel + "/messages", method: "POST", contentType: "application/json",
      data: JSON.stringify({content: this.content.value}),
      headers: key ? {Authorization: "Bearer " + key} : {}});
    this.content.value = "";
  });
})(jQuery);
