// The classic long-poll client of the seed demo, as it was (but for .text()
// in place of .html()): a jQuery $.getJSON("/status") loop and $.post("chat").
    $(function(){

    setTimeout(requestInventory, 100);

            $("#mypp").click(function(){
                $.post("chat",{
                    content: $("#message").val()
                    },"json");
        });
    });

function requestInventory(){
    $.getJSON("/status",{},function(data, Status, xhr){
            var content = data.content;
            $("#chatContent").empty().append($("<p>").text(content));
            setTimeout(requestInventory, 0);
    });
}
