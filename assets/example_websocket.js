// The classic WebSocket client of the seed demo, as it was (but for .text()
// in place of .html() and the page's own host): new WebSocket("/status") and $.post("chat").
    $(function(){
        requestInventory();
            $("#mypp").click(function(){
                $.post("chat",{
                    content: $("#message").val()
                    },"json");
        });
    });

function requestInventory(){
    var host = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/status";
    var websocket = new WebSocket(host);

    websocket.onopen = function (evt) {};
    websocket.onmessage = function (evt){
        var content = JSON.parse(evt.data).content;
        $("#chatContent").empty().append($("<p>").text(content));
    };
    websocket.onerror = function (evt) {};
}
