@testable import DoorbellAutomation
import DoorbellCore
import Foundation
import Mustache
import Testing

/// The worker's template context parses a run's body only when something reads it (issue 13), and
/// must read exactly as the parsed context does.
@Suite("Event context")
struct EventContextTests {
    static let event = NewEvent(
        source: "shop", type: "order.paid", providerID: nil, headers: [Header(name: "content-type", value: "application/json")],
        body: Array(#"{"order":{"id":"A-17","items":[{"n":"x&y"},{"n":"z"}]},"nothing":null,"amount":4200,"paid":true}"#.utf8)
    )

    @Test("a run's body is parsed only when a template reads it; templates, URLs and exec's stdin see what the parsed body gives")
    func lazyBodyReadsAsParsed() throws {
        let lazy = EventContext.make(Self.event, lazyBody: true)
        let body = try #require(lazy["body"] as? EventBody)
        #expect(try Templates.render("{{event.id}} {{event.type}} {{headers.content-type}}", lazy) == "\(Self.event.id) order.paid application/json")
        #expect(try Templates.renderURL("http://127.0.0.1/orders/{{event.source}}", lazy, field: "url") == "http://127.0.0.1/orders/shop")
        #expect(!body.isParsed, "no template read the body")

        let eager = EventContext.make(Self.event)
        #expect(!(eager["body"] is EventBody))
        let templates = [
            "{{body.order.id}}", "{{#body.order.items}}{{n}};{{/body.order.items}}", "{{body.order.items}}", "{{body.amount}} {{body.paid}}",
            "{{#body.nothing}}set{{/body.nothing}}{{^body.nothing}}null{{/body.nothing}}", "{{ count(body.order.items) }}",
            "{{#body}}{{order.id}}{{/body}}", "{{{body.order.items}}}", "{{body.missing}}",
        ]
        for template in templates {
            #expect(try Templates.render(template, EventContext.make(Self.event, lazyBody: true)) == Templates.render(template, eager), "\(template)")
            #expect(try Templates.render(template, EventContext.make(Self.event, lazyBody: true), html: true) == Templates.render(template, eager, html: true), "\(template)")
        }
        #expect(try Templates.render("{{body.order.id}}", lazy) == "A-17")
        #expect(body.isParsed)
        #expect(try Templates.renderURL("http://127.0.0.1/orders/{{body.order.id}}", EventContext.make(Self.event, lazyBody: true), field: "url")
            == Templates.renderURL("http://127.0.0.1/orders/{{body.order.id}}", eager, field: "url"))

        // exec's stdin: the same JSON, body included, from a context whose body nothing read yet.
        func stdin(_ context: [String: Any]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: ExecRunner.sanitized(context), options: [.sortedKeys]), as: UTF8.self)
        }
        let unread = EventContext.make(Self.event, lazyBody: true)
        #expect(try stdin(unread) == stdin(eager))
        #expect(try stdin(unread).contains(#""body":{"amount":4200"#))
    }

    @Test("a form post's fields and a text body read the same through the lazy body")
    func otherBodies() throws {
        let form = NewEvent(source: "form", type: "submitted", providerID: nil, headers: [Header(name: "content-type", value: "application/x-www-form-urlencoded")],
                            body: Array("name=Ada+L&email=ada%40example.com".utf8))
        let text = NewEvent(source: "form", type: "submitted", providerID: nil, headers: [], body: Array("plain words".utf8))
        // (`{{body}}` of the form's two fields would describe a dictionary, whose key order differs between two parses.)
        for (event, templates) in [(form, ["{{body.name}} <{{body.email}}>", "{{#body}}yes{{/body}}"]), (text, ["{{body}}", "{{#body}}yes{{/body}}", "{{body.name}}"])] {
            for template in templates {
                #expect(try Templates.render(template, EventContext.make(event, lazyBody: true)) == Templates.render(template, EventContext.make(event)), "\(template)")
            }
        }
        #expect(try Templates.render("{{body.name}}", EventContext.make(form, lazyBody: true)) == "Ada L")
        #expect(try Templates.render("{{body}}", EventContext.make(text, lazyBody: true)) == "plain words")
    }

    @Test("plain templates (text and name lookups) render without swift-mustache exactly as swift-mustache renders them; everything else is left to it")
    func plainTemplatesRenderAsMustache() throws {
        let context: [String: Any] = EventContext.make(Self.event, steps: [
            "mark-paid": ["status": 200, "body": ["crm_id": "crm_42", "tags": ["a", "b"], "none": NSNull(), "ok": true, "price": 12.5]] as [String: Any],
        ], lazyBody: true)
        let plain = [
            "{{event.id}}", "Order {{ body.order.id }} by {{headers.content-type}}!", "{{steps.mark-paid.body.crm_id}}", "{{body.missing}}x",
            "{{body.missing.deeper}}", "{{nothing}}", "{{event.id}}}", "}}{{event.type}}", "{{body.order.items}}", "{{body.amount}}",
            "{{steps.mark-paid.status}}", "{{steps.mark-paid.body.none}}", "{{steps.mark-paid.body.ok}}", "{{steps.mark-paid.body.price}}",
            "{{steps.mark-paid.body.tags}}", "{{event.id.deeper}}", "{{body.order.items.first}}", " {{event.id}} ", "\t{{event.type}}\t",
            "{{event.id}}  ",
        ]
        for template in plain {
            #expect(PlainTemplate(template) != nil, "\(template) is plain")
        }
        // Answered without swift-mustache: strings and missing values; anything else is handed back (nil).
        let answered = ["{{event.id}}", "Order {{ body.order.id }} by {{headers.content-type}}!", "{{steps.mark-paid.body.crm_id}}", "{{body.missing}}x",
                        "{{body.missing.deeper}}", "{{nothing}}", "{{event.id}}}", "}}{{event.type}}", " {{event.id}} ", "\t{{event.type}}\t", "{{event.id}}  "]
        for template in plain {
            let direct = try #require(PlainTemplate(template)).render(EventContext.make(Self.event, steps: context["steps"] as! [String: Any], lazyBody: true), limit: Templates.fieldLimit)
            #expect((direct != nil) == answered.contains(template), "\(template): \(direct ?? "nil")")
        }
        #expect(try #require(PlainTemplate("Order {{ body.order.id }} by {{headers.content-type}}!")).render(context, limit: 100) == "Order A-17 by application/json!")
        let notPlain = [
            "no tags", "{{{event.id}}}", "{{#body.paid}}y{{/body.paid}}", "{{^body.paid}}n{{/body.paid}}", "{{! note }}", "{{& event.id}}",
            "{{ count(body.order.items) }}", "{{.}}", "{{.event.id}}", "{{event..id}}", "{{event.id.}}", "{{% CONTENT_TYPE: HTML}}{{event.id}}",
            "{{=<% %>=}}<%event.id%>", "{{> partial}}", "{{event id}}", "{{event.id", "{{ev\nent}}",
            // Line breaks: swift-mustache drops a first line holding only the pragma, and blanks after the last break.
            "\nHi {{event.id}}", " \t\r\nHi {{event.id}}", "Hi {{event.id}}\n\t", "Hi {{event.id}}\nBye {{event.type}}",
        ]
        for template in notPlain {
            #expect(PlainTemplate(template) == nil, "\(template) is left to swift-mustache")
        }
        // Malformed: refused the same way, looking plain or not.
        for template in ["{{event id}}", "{{event.id", "{{#body}}", "{{ev\nent}}"] {
            #expect(throws: Templates.RenderError.self, "\(template)") { try Templates.render(template, context) }
        }
        // `{{.}}` and `{{body}}` describe whole objects (their key order differs between two parses).
        for template in plain + notPlain where !["{{event id}}", "{{event.id", "{{> partial}}", "{{.}}", "{{ev\nent}}"].contains(template) {
            let viaMustache = try Templates.renderBounded(
                MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template), source: template, EventContext.make(Self.event, steps: context["steps"] as! [String: Any], lazyBody: true),
                contentType: "TEXT", field: "t", limit: Templates.fieldLimit)
            #expect(try Templates.render(template, context) == viaMustache, "\(template)")
        }
        let fresh = EventContext.make(Self.event, lazyBody: true)
        #expect(try Templates.render("evt {{event.id}}", fresh) == "evt \(Self.event.id)")
        #expect(!(try #require(fresh["body"] as? EventBody)).isParsed, "a plain lookup outside body leaves it unparsed")
        #expect(throws: Templates.RenderError.self) { try Templates.render("{{body.order.id}}{{event.id}}", fresh, limit: 10) }
        #expect(try Templates.render("{{body.order.id}}", fresh, limit: 4) == "A-17", "a value exactly at the limit renders")
    }
}
