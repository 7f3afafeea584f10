//! The portal's pages read back by an HTML parser (html5ever, through
//! scraper): whatever a schema's author or a respondent writes, the page
//! holds exactly the elements and attributes the form asks for.

use concertmaster_core::{form::FormSchema, validate::FieldError};
use concertmaster_nodes::forms::portal::{message_page, FormPage, PostedForm};
use scraper::{ElementRef, Html};
use serde_json::{json, Value};

/// Text that would be markup, an attribute or a script if it were spliced
/// in unescaped.
const HOSTILE: &str =
    "\"'><script>alert(1)</script><a href=\"javascript:alert(2)\" onclick='x'>&amp; &</a>";

type Element = (String, Vec<(String, String)>);

/// Every element of `page` in document order, with its attributes sorted;
/// the parser must have found nothing to repair.
fn elements(page: &str) -> (Html, Vec<Element>) {
    let html = Html::parse_document(page);
    assert!(html.errors.is_empty(), "{:?}\n{page}", html.errors);
    let found = html
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .map(|el| {
            let mut attrs: Vec<(String, String)> = el
                .value()
                .attrs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            attrs.sort();
            (el.value().name().to_string(), attrs)
        })
        .collect();
    (html, found)
}

fn el(name: &str, attrs: &[(&str, &str)]) -> Element {
    let mut attrs: Vec<(String, String)> = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    attrs.sort();
    (name.to_string(), attrs)
}

fn head(title_attrs: &[Element]) -> Vec<Element> {
    let mut out = vec![
        el("html", &[("lang", "en")]),
        el("head", &[]),
        el("meta", &[("charset", "utf-8")]),
        el(
            "meta",
            &[
                ("content", "width=device-width, initial-scale=1"),
                ("name", "viewport"),
            ],
        ),
        el("title", &[]),
        el("style", &[]),
        el("body", &[]),
        el("main", &[]),
    ];
    out.extend_from_slice(title_attrs);
    out
}

/// The form's two buttons: submit, and save a draft.
fn buttons() -> [Element; 2] {
    [
        el("button", &[("type", "submit")]),
        el(
            "button",
            &[
                ("formnovalidate", ""),
                ("name", "action"),
                ("type", "submit"),
                ("value", "draft"),
            ],
        ),
    ]
}

fn texts(html: &Html, selector: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .map(|e| e.text().collect::<String>())
        .collect()
}

fn attr(html: &Html, selector: &str, name: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .filter_map(|e| e.value().attr(name).map(str::to_string))
        .collect()
}

fn hostile_form() -> FormSchema {
    FormSchema::new(
        "hostile",
        HOSTILE,
        json!({
            "type": "object",
            "required": ["company"],
            "properties": {
                "company": { "type": "string", "title": HOSTILE, "x-pii": true },
                "country": { "type": "string", "title": HOSTILE, "enum": [HOSTILE, "DE"] },
                "tags": { "type": "array", "title": HOSTILE, "items": { "enum": [HOSTILE, "b"] } },
                "agree": { "type": "boolean", "title": HOSTILE },
                "site": { "type": "string", "format": "uri", "title": "javascript:alert(3)" },
                "contact": { "type": "object", "title": HOSTILE, "properties": {
                    "email": { "type": "string", "format": "email", "title": HOSTILE }
                } }
            }
        }),
    )
    .with_ui_schema(json!({
        "ui:order": ["company", "country", "tags", "agree", "site", "contact"],
        "company": { "ui:help": HOSTILE },
    }))
}

#[test]
fn hostile_titles_help_labels_and_answers_stay_text() {
    let form = hostile_form();
    let data = json!({
        "company": HOSTILE,
        "country": HOSTILE,
        "tags": [HOSTILE],
        "agree": true,
        "site": "javascript:alert(4)",
        "contact": { "email": HOSTILE },
    });
    let errors = [FieldError::new("/company", HOSTILE)];
    let action = "/f/\"><script>";
    let page = FormPage::new(&form, action)
        .with_data(&data)
        .with_errors(&errors)
        .with_notice(HOSTILE)
        .render();
    let (html, found) = elements(&page);

    let mut expected = head(&[]);
    expected.extend([
        el("h1", &[]),
        el("p", &[("class", "saved"), ("role", "status")]),
        el("p", &[("class", "summary"), ("role", "alert")]),
        el(
            "form",
            &[("action", action), ("method", "post"), ("novalidate", "")],
        ),
        // company: required, personal data, help, its error
        el("div", &[("class", "field invalid")]),
        el("label", &[("for", "f.company")]),
        el("span", &[("class", "help")]),
        el(
            "input",
            &[
                ("id", "f.company"),
                ("name", "/company"),
                ("type", "text"),
                ("value", HOSTILE),
            ],
        ),
        el("div", &[("class", "help")]),
        el("div", &[("class", "error"), ("data-field", "/company")]),
        // country: a select with the hostile option chosen
        el("div", &[("class", "field")]),
        el("label", &[("for", "f.country")]),
        el("select", &[("id", "f.country"), ("name", "/country")]),
        el("option", &[("value", "")]),
        el("option", &[("selected", ""), ("value", HOSTILE)]),
        el("option", &[("value", "DE")]),
        // tags: one checkbox per option
        el("div", &[("class", "field")]),
        el("label", &[("for", "f.tags")]),
        el("label", &[]),
        el(
            "input",
            &[
                ("checked", ""),
                ("id", "f.tags.0"),
                ("name", "/tags"),
                ("type", "checkbox"),
                ("value", HOSTILE),
            ],
        ),
        el("label", &[]),
        el(
            "input",
            &[
                ("id", "f.tags.1"),
                ("name", "/tags"),
                ("type", "checkbox"),
                ("value", "b"),
            ],
        ),
        // agree
        el("div", &[("class", "field")]),
        el("label", &[("for", "f.agree")]),
        el(
            "input",
            &[
                ("checked", ""),
                ("id", "f.agree"),
                ("name", "/agree"),
                ("type", "checkbox"),
                ("value", "true"),
            ],
        ),
        // site: a URL field whose answer is a javascript: URL, as a value only
        el("div", &[("class", "field")]),
        el("label", &[("for", "f.site")]),
        el(
            "input",
            &[
                ("id", "f.site"),
                ("name", "/site"),
                ("type", "url"),
                ("value", "javascript:alert(4)"),
            ],
        ),
        // contact: a fieldset
        el("fieldset", &[]),
        el("legend", &[]),
        el("div", &[("class", "field")]),
        el("label", &[("for", "f.contact.email")]),
        el(
            "input",
            &[
                ("id", "f.contact.email"),
                ("name", "/contact/email"),
                ("type", "email"),
                ("value", HOSTILE),
            ],
        ),
    ]);
    expected.extend(buttons());
    assert_eq!(found, expected, "{page}");

    // The hostile text reads back as the very text it was.
    assert_eq!(texts(&html, "title"), [HOSTILE]);
    assert_eq!(texts(&html, "h1"), [HOSTILE]);
    assert_eq!(texts(&html, "p.saved"), [HOSTILE]);
    assert_eq!(texts(&html, "legend"), [HOSTILE]);
    assert_eq!(texts(&html, ".help:not(span)"), [HOSTILE]);
    assert_eq!(texts(&html, ".error"), [HOSTILE]);
    assert_eq!(
        texts(&html, "label[for=\"f.company\"]"),
        [format!("{HOSTILE} * (personal data)")]
    );
    assert_eq!(
        texts(&html, "label[for=\"f.site\"]"),
        ["javascript:alert(3)"]
    );
    assert_eq!(texts(&html, "option[selected]"), [HOSTILE]);
    assert_eq!(
        attr(&html, "input[type=checkbox][name=\"/tags\"]", "value")[0],
        HOSTILE
    );
}

#[test]
fn hostile_property_names_stay_attribute_values() {
    // Publishing refuses such names; a form built in code is still safe.
    let name = "a\"onfocus=\"alert(1)\"<b>";
    let form = FormSchema::new(
        "names",
        "Names",
        json!({ "type": "object", "properties": { name: { "type": "string" } } }),
    );
    let page = FormPage::new(&form, "/f/t").render();
    let (html, found) = elements(&page);
    let pointer = format!("/{name}");
    let id = format!("f.{name}");
    let mut expected = head(&[]);
    expected.extend([
        el("h1", &[]),
        el(
            "form",
            &[("action", "/f/t"), ("method", "post"), ("novalidate", "")],
        ),
        el("div", &[("class", "field")]),
        el("label", &[("for", &id)]),
        el(
            "input",
            &[
                ("id", &id),
                ("name", &pointer),
                ("type", "text"),
                ("value", ""),
            ],
        ),
    ]);
    expected.extend(buttons());
    assert_eq!(found, expected, "{page}");
    assert_eq!(texts(&html, "label"), [name]);
}

#[test]
fn a_message_page_is_its_heading_and_text() {
    let page = message_page(HOSTILE, HOSTILE, HOSTILE);
    let (html, found) = elements(&page);
    let mut expected = head(&[]);
    expected.extend([el("h1", &[]), el("p", &[])]);
    assert_eq!(found, expected, "{page}");
    assert_eq!(texts(&html, "h1"), [HOSTILE]);
    assert_eq!(texts(&html, "p"), [HOSTILE]);
}

#[test]
fn a_posted_page_reads_back_as_the_answers_it_showed() {
    // What the page shows, posted back as a browser would, is the data.
    let form = hostile_form();
    let data = json!({
        "company": HOSTILE,
        "country": "DE",
        "tags": [HOSTILE, "b"],
        "agree": true,
        "contact": { "email": "ap@nordwind.example" },
    });
    let page = FormPage::new(&form, "/f/t").with_data(&data).render();
    let html = Html::parse_document(&page);
    let mut body = String::new();
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let fields = scraper::Selector::parse("input, select").unwrap();
    for field in html.select(&fields) {
        let el = field.value();
        let name = el.attr("name").unwrap();
        let value = if el.name() == "select" {
            let chosen = scraper::Selector::parse("option[selected]").unwrap();
            match field.select(&chosen).next() {
                Some(option) => option.value().attr("value").unwrap().to_string(),
                None => String::new(),
            }
        } else if el.attr("type") == Some("checkbox") {
            if el.attr("checked").is_none() {
                continue;
            }
            el.attr("value").unwrap().to_string()
        } else {
            el.attr("value").unwrap_or_default().to_string()
        };
        body.push_str(&format!("{}={}&", encode(name), encode(&value)));
    }
    let posted = PostedForm::parse(&form.schema, body.as_bytes());
    assert_eq!(posted.answers, data);
    assert!(!posted.save_draft);
    assert_eq!(
        PostedForm::parse(&form.schema, b"").answers,
        Value::Object(Default::default())
    );
}

/// A form as the form builder writes a "shown when" field: the VAT id
/// only for German suppliers, required then.
fn conditional_form() -> FormSchema {
    FormSchema::new(
        "profile",
        "Supplier profile",
        json!({
            "type": "object",
            "required": ["country"],
            "properties": {
                "country": { "type": "string", "title": "Country", "enum": ["DE", "FR"] }
            },
            "allOf": [{
                "if": { "properties": { "country": { "const": "DE" } }, "required": ["country"] },
                "then": {
                    "properties": { "vatId": { "type": "string", "title": "VAT id", "pattern": "^DE[0-9]{9}$" } },
                    "required": ["vatId"]
                }
            }]
        }),
    )
    .with_ui_schema(json!({ "ui:order": ["country", "vatId", "*"] }))
}

fn labels(page: &str) -> Vec<String> {
    texts(&Html::parse_document(page), "label")
}

#[test]
fn a_conditional_field_is_drawn_when_its_condition_holds_or_it_has_an_error() {
    let form = conditional_form();
    // Nothing chosen, or another country: no VAT id.
    assert_eq!(
        labels(&FormPage::new(&form, "/f/t").render()),
        ["Country *"]
    );
    let french = json!({ "country": "FR" });
    let page = FormPage::new(&form, "/f/t").with_data(&french).render();
    assert_eq!(labels(&page), ["Country *"]);
    // Germany: the VAT id, required, in the uiSchema's order.
    let german = json!({ "country": "DE" });
    let page = FormPage::new(&form, "/f/t").with_data(&german).render();
    assert_eq!(labels(&page), ["Country *", "VAT id *"]);

    // A submission refused for the VAT id shows the field with its error:
    // the respondent always sees what to fix.
    let posted = PostedForm::parse(&form.schema, b"%2Fcountry=DE");
    let errors = form.check(&posted.answers).unwrap().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].pointer, "/vatId");
    let page = FormPage::new(&form, "/f/t")
        .with_data(&posted.answers)
        .with_errors(&errors)
        .render();
    let html = Html::parse_document(&page);
    assert_eq!(texts(&html, "label"), ["Country *", "VAT id *"]);
    assert_eq!(attr(&html, ".error", "data-field"), ["/vatId"]);
    assert_eq!(attr(&html, "input", "name"), ["/vatId"]);

    // An error on a field whose condition does not hold still shows it.
    let errors = [FieldError::new("/vatId", "not a VAT id")];
    let page = FormPage::new(&form, "/f/t")
        .with_data(&french)
        .with_errors(&errors)
        .render();
    assert_eq!(labels(&page), ["Country *", "VAT id"]);
}

#[test]
fn a_conditional_fields_answer_is_kept_and_checked() {
    let form = conditional_form();
    let posted = PostedForm::parse(&form.schema, b"%2Fcountry=DE&%2FvatId=DE123456789");
    assert_eq!(
        posted.answers,
        json!({ "country": "DE", "vatId": "DE123456789" })
    );
    assert_eq!(form.check(&posted.answers).unwrap(), Ok(()));
    let posted = PostedForm::parse(&form.schema, b"%2Fcountry=DE&%2FvatId=nope");
    let errors = form.check(&posted.answers).unwrap().unwrap_err();
    assert_eq!(errors[0].pointer, "/vatId");
}
