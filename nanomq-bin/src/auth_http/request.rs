//! The request a check sends: URL, method, headers and parameters written as templates
//! (see `template`), compiled once when the configuration is read and rendered per check
//! with the client's values. Each value is encoded for where it stands (percent-encoded in
//! the URL, a query or a form, escaped in JSON, refused in a header if it cannot be one), so
//! no client id or password can add a parameter, a header or a path segment of its own.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::net::SocketAddr;

use broker_core::Action;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};

pub(crate) use super::template::Scope;
use super::template::{ClientValues, Encoding, Piece, Template, Values, Var, percent_encode};

/// The HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpMethod {
    /// Parameters in the query string.
    Get,
    /// Parameters in the body, as JSON or a form (as the `content-type` header says).
    Post,
}

/// How a POST carries its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Form,
}

/// A problem with a request's configuration: the key under the request's table (`url`,
/// `headers.x-token`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecProblem {
    pub(crate) key: String,
    pub(crate) message: String,
}

/// Why a request could not be rendered for a client: its values cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderError {
    /// A header's value would hold a character no header may (a control character in the
    /// client's user name, say).
    Header(HeaderName),
    /// The URL did not parse once rendered (cannot happen with encoded values; reported
    /// rather than assumed).
    Url,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header(name) => write!(
                f,
                "the client's values make header {name} invalid (a control character?)"
            ),
            Self::Url => f.write_str("the rendered URL is not a valid URL"),
        }
    }
}

/// A compiled request: what `[auth.http.authn]` or `[auth.http.acl]` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestSpec {
    /// As written, for logs: its placeholders are not filled in, so no password is logged.
    url_text: String,
    url: Template,
    method: HttpMethod,
    headers: Vec<(HeaderName, Template)>,
    params: Vec<(String, Template)>,
    body: BodyFormat,
    /// The placeholders the request uses: two checks with the same values of these send the
    /// same request.
    used: Vec<Var>,
    https: bool,
}

impl RequestSpec {
    /// Compiles a request table; every problem found, each naming its key.
    pub(crate) fn compile(
        url: &str,
        method: HttpMethod,
        headers: &BTreeMap<String, String>,
        params: &BTreeMap<String, String>,
        scope: Scope,
    ) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| {
            problems.push(SpecProblem { key, message });
        };
        let url_template = Template::parse(url, scope, false).unwrap_or_else(|message| {
            problem("url".to_owned(), message);
            Template { pieces: Vec::new() }
        });
        let mut https = false;
        if !url_template.pieces.is_empty() {
            match check_url(&url_template) {
                Ok(is_https) => https = is_https,
                Err(message) => problem("url".to_owned(), message),
            }
        }
        let mut body = BodyFormat::Json;
        let mut compiled_headers = Vec::new();
        for (name, value) in headers {
            let key = format!("headers.{name}");
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                problem(key, "is not a valid header name".to_owned());
                continue;
            };
            let template = match Template::parse(value, scope, true) {
                Ok(template) => template,
                Err(message) => {
                    problem(key, message);
                    continue;
                }
            };
            if header == CONTENT_TYPE {
                match template.literal() {
                    None => problem(key, "must not hold placeholders".to_owned()),
                    Some(value) => {
                        let media = value.split(';').next().unwrap_or("").trim();
                        if media.eq_ignore_ascii_case("application/json") {
                            body = BodyFormat::Json;
                        } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                            body = BodyFormat::Form;
                        } else if method == HttpMethod::Post {
                            problem(
                                key,
                                format!(
                                    "\"{value}\" is not a body this request can send: use \
                                     \"application/json\" or \
                                     \"application/x-www-form-urlencoded\""
                                ),
                            );
                        }
                    }
                }
            } else if let Some(value) = template.literal()
                && HeaderValue::from_str(&value).is_err()
            {
                problem(key, "is not a valid header value".to_owned());
            }
            compiled_headers.push((header, template));
        }
        if method == HttpMethod::Post && !compiled_headers.iter().any(|(n, _)| n == CONTENT_TYPE) {
            compiled_headers.push((
                CONTENT_TYPE,
                Template {
                    pieces: vec![Piece::Text("application/json".to_owned())],
                },
            ));
        }
        let mut compiled_params = Vec::new();
        for (name, value) in params {
            match Template::parse(value, scope, true) {
                Ok(template) => compiled_params.push((name.clone(), template)),
                Err(message) => problem(format!("params.{name}"), message),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut used: Vec<Var> = url_template
            .vars()
            .chain(compiled_headers.iter().flat_map(|(_, t)| t.vars()))
            .chain(compiled_params.iter().flat_map(|(_, t)| t.vars()))
            .collect();
        // The cache tells clients apart by who they are and ACL checks by what they are
        // about, whatever the request carries.
        used.extend([Var::Username, Var::ClientId]);
        if scope == Scope::Acl {
            used.extend([Var::Action, Var::Topic]);
        }
        used.sort_unstable();
        used.dedup();
        Ok(Self {
            url_text: url.to_owned(),
            url: url_template,
            method,
            headers: compiled_headers,
            params: compiled_params,
            body,
            used,
            https,
        })
    }

    /// The URL as configured (placeholders unfilled), for logs.
    pub(crate) fn url_text(&self) -> &str {
        &self.url_text
    }

    /// Whether the request goes to an `https` URL.
    pub(crate) fn is_https(&self) -> bool {
        self.https
    }

    /// Feeds what distinguishes this check's request to `hasher`: the values of the
    /// placeholders it uses (the literal parts are the same for every check).
    pub(crate) fn hash_values(&self, values: &Values<'_>, hasher: &mut dyn Hasher) {
        for var in &self.used {
            let value = values.get(*var);
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.write_usize(value.len());
            hasher.write(&value);
        }
    }

    /// The request for one check.
    pub(crate) fn build(&self, values: &Values<'_>) -> Result<Request<Full<Bytes>>, RenderError> {
        let mut url = Vec::with_capacity(128);
        self.url.render(values, Encoding::Percent, &mut url);
        let mut body = Bytes::new();
        if !self.params.is_empty() {
            match self.method {
                HttpMethod::Get => {
                    url.push(if url.contains(&b'?') { b'&' } else { b'?' });
                    self.form(values, &mut url);
                }
                HttpMethod::Post => body = self.body(values),
            }
        }
        let uri = Uri::try_from(url).map_err(|_| RenderError::Url)?;
        let method = match self.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
        };
        let mut request = Request::builder().method(method).uri(uri);
        let mut value = Vec::new();
        for (name, template) in &self.headers {
            value.clear();
            template.render(values, Encoding::Raw, &mut value);
            let header =
                HeaderValue::from_bytes(&value).map_err(|_| RenderError::Header(name.clone()))?;
            request = request.header(name, header);
        }
        request.body(Full::new(body)).map_err(|_| RenderError::Url)
    }

    /// The parameters as `a=1&b=2`.
    fn form(&self, values: &Values<'_>, out: &mut Vec<u8>) {
        for (i, (name, template)) in self.params.iter().enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            percent_encode(name.as_bytes(), out);
            out.push(b'=');
            template.render(values, Encoding::Form, out);
        }
    }

    fn body(&self, values: &Values<'_>) -> Bytes {
        match self.body {
            BodyFormat::Form => {
                let mut out = Vec::new();
                self.form(values, &mut out);
                Bytes::from(out)
            }
            BodyFormat::Json => {
                let mut object = serde_json::Map::new();
                let mut raw = Vec::new();
                for (name, template) in &self.params {
                    raw.clear();
                    template.render(values, Encoding::Raw, &mut raw);
                    // JSON holds text: a password that is not UTF-8 is sent with its invalid
                    // bytes replaced (a query or a form carries it exactly).
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    object.insert(name.clone(), serde_json::Value::String(text));
                }
                // Serializing a map of strings cannot fail.
                serde_json::to_vec(&object).map_or_else(|_| Bytes::new(), Bytes::from)
            }
        }
    }
}

/// Checks the URL with every placeholder filled in: whether it is `https`, or what is wrong.
fn check_url(url: &Template) -> Result<bool, String> {
    let client = ClientValues {
        username: Some("u".to_owned()),
        client_id: "c".to_owned(),
        password: Some(Bytes::from_static(b"p")),
        peer: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
        cert_common_name: Some("cn".to_owned()),
        cert_subject: Some("subject".to_owned()),
    };
    let values = Values {
        client: &client,
        acl: Some((Action::Publish, "t")),
    };
    let mut rendered = Vec::new();
    url.render(&values, Encoding::Percent, &mut rendered);
    let text = String::from_utf8_lossy(&rendered).into_owned();
    let uri = Uri::try_from(rendered).map_err(|e| format!("\"{text}\" is not a URL: {e}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("\"{text}\" has no host"));
    }
    match uri.scheme_str() {
        Some("http") => Ok(false),
        Some("https") => Ok(true),
        _ => Err(format!("\"{text}\" must start with http:// or https://")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use http_body_util::BodyExt;

    use super::*;

    fn client() -> ClientValues {
        ClientValues {
            username: Some("ali ce".to_owned()),
            client_id: "dev/1?x=y".to_owned(),
            password: Some(Bytes::from_static(b"p&w=1+\"\\%\n")),
            peer: Some("10.1.2.3:5555".parse().unwrap()),
            cert_common_name: None,
            cert_subject: Some("CN=dev,O=Acme".to_owned()),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn spec(
        url: &str,
        method: HttpMethod,
        headers: &[(&str, &str)],
        params: &[(&str, &str)],
        scope: Scope,
    ) -> RequestSpec {
        RequestSpec::compile(url, method, &map(headers), &map(params), scope).unwrap()
    }

    async fn body_of(request: Request<Full<Bytes>>) -> String {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn get_puts_params_in_the_query_percent_encoded() {
        let spec = spec(
            "http://auth.local:8080/mqtt/${clientid}?v=1",
            HttpMethod::Get,
            &[],
            &[
                ("u", "%u"),
                ("p", "${password}"),
                ("addr", "%a:%p"),
                ("lit", "100%%"),
            ],
            Scope::Authn,
        );
        let client = client();
        let request = spec
            .build(&Values {
                client: &client,
                acl: None,
            })
            .unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(
            request.uri().to_string(),
            "http://auth.local:8080/mqtt/dev%2F1%3Fx%3Dy?v=1&addr=10.1.2.3%3A5555&lit=100%25\
             &p=p%26w%3D1%2B%22%5C%25%0A&u=ali%20ce"
        );
        assert!(request.headers().get(CONTENT_TYPE).is_none());
    }

    #[tokio::test]
    async fn post_json_escapes_and_form_encodes() {
        let client = client();
        let values = Values {
            client: &client,
            acl: Some((Action::Subscribe, "a/+/#")),
        };
        let json = spec(
            "http://h/acl",
            HttpMethod::Post,
            &[],
            &[
                ("password", "${password}"),
                ("action", "${action}"),
                ("a", "%A"),
                ("t", "%t"),
            ],
            Scope::Acl,
        );
        let request = json.build(&values).unwrap();
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_str(&body_of(request).await).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "password": "p&w=1+\"\\%\n", "action": "subscribe", "a": "1", "t": "a/+/#"
            })
        );
        let form = spec(
            "http://h/acl",
            HttpMethod::Post,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &[
                ("p", "%P"),
                ("t", "${topic}"),
                ("s", "${cert_subject}"),
                ("cn", "%C"),
            ],
            Scope::Acl,
        );
        let request = form.build(&values).unwrap();
        assert_eq!(
            body_of(request).await,
            "cn=&p=p%26w%3D1%2B%22%5C%25%0A&s=CN%3Ddev%2CO%3DAcme&t=a%2F%2B%2F%23"
        );
    }

    #[test]
    fn headers_take_placeholders_and_refuse_control_characters() {
        let spec = spec(
            "http://h/",
            HttpMethod::Get,
            &[("x-user", "${username}"), ("x-pass", "%P")],
            &[],
            Scope::Authn,
        );
        let mut client = client();
        client.password = Some(Bytes::from_static(b"fine"));
        let values = Values {
            client: &client,
            acl: None,
        };
        let request = spec.build(&values).unwrap();
        assert_eq!(request.headers()["x-user"], "ali ce");
        assert_eq!(request.headers()["x-pass"], "fine");
        client.password = Some(Bytes::from_static(b"bad\r\nx-admin: 1"));
        let values = Values {
            client: &client,
            acl: None,
        };
        assert_eq!(
            spec.build(&values).unwrap_err(),
            RenderError::Header(HeaderName::from_static("x-pass"))
        );
    }

    #[test]
    fn problems_name_their_key() {
        let problems = RequestSpec::compile(
            "ftp://h/${nope}",
            HttpMethod::Post,
            &map(&[("content-type", "text/plain"), ("bad name", "x")]),
            &map(&[("t", "${topic}"), ("open", "${username")]),
            Scope::Authn,
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "url",
                "headers.bad name",
                "headers.content-type",
                "params.open",
                "params.t"
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("${nope}"), "{problems:?}");
        assert!(
            problems[4].message.contains("[auth.http.acl]"),
            "{problems:?}"
        );
        let scheme = RequestSpec::compile(
            "ftp://h/",
            HttpMethod::Get,
            &BTreeMap::new(),
            &BTreeMap::new(),
            Scope::Authn,
        )
        .unwrap_err();
        assert!(scheme[0].message.contains("http://"), "{scheme:?}");
    }

    #[test]
    fn a_percent_that_is_no_placeholder_stays() {
        let spec = spec(
            "http://h/a%20b",
            HttpMethod::Get,
            &[],
            &[("x", "%z%")],
            Scope::Authn,
        );
        let client = client();
        let request = spec
            .build(&Values {
                client: &client,
                acl: None,
            })
            .unwrap();
        assert_eq!(request.uri().to_string(), "http://h/a%20b?x=%25z%25");
    }

    #[test]
    fn the_request_depends_only_on_the_used_values() {
        use std::hash::{BuildHasher, RandomState};
        let spec = spec(
            "http://h/",
            HttpMethod::Post,
            &[],
            &[("p", "${password}")],
            Scope::Authn,
        );
        let state = RandomState::new();
        let key = |client: &ClientValues| {
            let mut hasher = state.build_hasher();
            spec.hash_values(&Values { client, acl: None }, &mut hasher);
            hasher.finish()
        };
        let a = client();
        let mut other_port = client();
        other_port.peer = Some("10.1.2.3:6666".parse().unwrap());
        let mut other_password = client();
        other_password.password = Some(Bytes::from_static(b"x"));
        let mut other_user = client();
        other_user.username = Some("bob".to_owned());
        assert_eq!(key(&a), key(&other_port));
        assert_ne!(key(&a), key(&other_password));
        assert_ne!(key(&a), key(&other_user));
    }
}
