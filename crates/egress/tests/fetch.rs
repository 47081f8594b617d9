//! Real fetches against a local HTTP server on loopback.

use egress::{EgressError, EgressPolicy, Fetcher};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves canned responses: `/small`, `/big` (2 MiB), `/slow` (never answers),
/// `/redirect` (to the metadata address), `/missing` (404).
async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
                let response = match path.as_str() {
                    "/small" => "HTTP/1.1 200 OK\r\ncontent-type: application/ld+json\r\ncontent-length: 14\r\n\r\n{\"@context\":1}".to_owned(),
                    "/big" => {
                        let body = "x".repeat(2 * 1024 * 1024);
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                    }
                    "/big-chunked" => {
                        let chunk = "y".repeat(64 * 1024);
                        let mut out = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_owned();
                        for _ in 0..40 {
                            out.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
                        }
                        out.push_str("0\r\n\r\n");
                        out
                    }
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        String::new()
                    }
                    "/redirect" => "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest\r\ncontent-length: 0\r\n\r\n".to_owned(),
                    _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned(),
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn trusted() -> Fetcher {
    Fetcher::new(EgressPolicy {
        allow_private: true,
        timeout: Duration::from_millis(500),
        ..EgressPolicy::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_even_for_a_live_server() {
    let base = server().await;
    let strict = Fetcher::new(EgressPolicy::default()).unwrap();
    assert!(matches!(
        strict.get(&format!("{base}/small"), "*/*").await,
        Err(EgressError::Forbidden { .. })
    ));
    // A name that resolves to loopback is refused by the resolver, not just literal IPs.
    let port = base.rsplit(':').next().unwrap();
    let by_name = strict
        .get(&format!("http://localhost.:{port}/small"), "*/*")
        .await;
    assert!(
        matches!(
            by_name,
            Err(EgressError::Network { .. }) | Err(EgressError::Forbidden { .. })
        ),
        "{by_name:?}"
    );
}

#[tokio::test]
async fn bounded_fetches_on_a_trusted_network() {
    let base = server().await;
    let fetcher = trusted();
    let fetched = fetcher
        .get(&format!("{base}/small"), "application/ld+json")
        .await
        .unwrap();
    assert_eq!(fetched.body, b"{\"@context\":1}");
    assert_eq!(fetched.content_type.as_deref(), Some("application/ld+json"));
    assert!(matches!(
        fetcher.get(&format!("{base}/big"), "*/*").await,
        Err(EgressError::TooLarge { .. })
    ));
    assert!(matches!(
        fetcher.get(&format!("{base}/big-chunked"), "*/*").await,
        Err(EgressError::TooLarge { .. })
    ));
    assert!(matches!(
        fetcher.get(&format!("{base}/missing"), "*/*").await,
        Err(EgressError::Status { status: 404, .. })
    ));
    let started = std::time::Instant::now();
    assert!(matches!(
        fetcher.get(&format!("{base}/slow"), "*/*").await,
        Err(EgressError::Network { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the time limit applies"
    );
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let base = server().await;
    // Loopback is allowed (a trusted network), but the redirect goes to the link-local
    // metadata address, which no policy allows.
    let error = trusted()
        .get(&format!("{base}/redirect"), "*/*")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("169.254.169.254 is not a public address"),
        "{error}"
    );
}
