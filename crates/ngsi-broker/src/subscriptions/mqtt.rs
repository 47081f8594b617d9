//! MQTT notifications (`mqtt://[user[:password]@]host[:port]/topic`): one connection per
//! broker and credentials, owned by that endpoint's worker. The message is the spec's MQTT
//! binding: `{"metadata": {Content-Type, Link, receiverInfo...}, "body": notification}`.
//! `notifierInfo` `MQTT-QoS` (0, 1 or 2) selects the QoS; with QoS 1 and 2 a notification
//! counts as delivered once the broker acknowledged it.

use super::notifier::{Job, NotifierSettings, next_job, payload};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Map, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where an MQTT endpoint points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MqttTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<(String, String)>,
    pub(crate) topic: String,
}

/// Parses `mqtt://user:pass@host:port/topic`.
pub(crate) fn parse(uri: &str) -> Option<MqttTarget> {
    let url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "mqtt" | "mqtts") {
        return None;
    }
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = url.port().unwrap_or(1883);
    let topic = url.path().trim_start_matches('/').to_owned();
    let user = (!url.username().is_empty()).then(|| {
        (
            url.username().to_owned(),
            url.password().unwrap_or("").to_owned(),
        )
    });
    Some(MqttTarget {
        host,
        port,
        user,
        topic,
    })
}

/// The worker key of an MQTT endpoint (one connection per broker and credentials), or
/// `None` for other endpoints.
pub(crate) fn connection_key(uri: &str) -> Option<String> {
    let t = parse(uri)?;
    let user = t.user.map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
    Some(format!("mqtt://{user}{}:{}", t.host, t.port))
}

fn qos(job: &Job) -> QoS {
    let level = job
        .live
        .sub
        .notification
        .endpoint
        .notifier_info
        .iter()
        .find(|(k, _)| k == "MQTT-QoS")
        .map(|(_, v)| v.as_str());
    match level {
        Some("1") => QoS::AtLeastOnce,
        Some("2") => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    }
}

/// The MQTT message of a notification.
pub(crate) fn message(job: &Job) -> Vec<u8> {
    let (body, headers) = payload(job);
    let mut metadata = Map::new();
    for (k, v) in headers {
        metadata.insert(k, Value::String(v));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    serde_json::json!({"metadata": metadata, "body": body})
        .to_string()
        .into_bytes()
}

struct Connection {
    client: AsyncClient,
    events: EventLoop,
}

async fn connect(target: &MqttTarget, policy: &egress::EgressPolicy) -> Result<Connection, String> {
    // The address policy applies to MQTT brokers as to HTTP receivers.
    let addrs = egress::resolve_allowed(&target.host, target.port, policy)
        .await
        .map_err(|e| e.to_string())?;
    let addr = addrs.first().ok_or("no address")?;
    let id = format!("citybrain-{}", uuid::Uuid::new_v4().simple());
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = &target.user {
        options.set_credentials(u.clone(), p.clone());
    }
    let (client, events) = AsyncClient::new(options, 16);
    Ok(Connection { client, events })
}

/// Publishes and drives the event loop until the message left (QoS 0) or was acknowledged.
async fn publish(
    conn: &mut Connection,
    topic: &str,
    qos: QoS,
    payload: Vec<u8>,
) -> Result<(), String> {
    conn.client
        .try_publish(topic, qos, false, payload)
        .map_err(|e| e.to_string())?;
    loop {
        match conn.events.poll().await.map_err(|e| e.to_string())? {
            Event::Outgoing(Outgoing::Publish(_)) if qos == QoS::AtMostOnce => return Ok(()),
            Event::Incoming(Packet::PubAck(_)) if qos == QoS::AtLeastOnce => return Ok(()),
            Event::Incoming(Packet::PubComp(_)) if qos == QoS::ExactlyOnce => return Ok(()),
            _ => {}
        }
    }
}

pub(crate) async fn worker(
    mut rx: mpsc::Receiver<Job>,
    settings: NotifierSettings,
    policy: egress::EgressPolicy,
) {
    let mut conn: Option<Connection> = None;
    while let Some(job) = next_job(&mut rx).await {
        let uri = job.live.sub.notification.endpoint.uri.clone();
        let Some(target) = parse(&uri) else {
            job.live.record_outcome(crate::ops::now(), false);
            continue;
        };
        let bytes = message(&job);
        let qos = qos(&job);
        let mut backoff = settings.backoff;
        let mut ok = false;
        for attempt in 0..=settings.retries {
            if conn.is_none() {
                match tokio::time::timeout(settings.timeout, connect(&target, &policy)).await {
                    Ok(Ok(c)) => conn = Some(c),
                    Ok(Err(e)) => {
                        tracing::debug!(endpoint = %uri, error = %e, "MQTT endpoint refused");
                        break;
                    }
                    Err(_) => {}
                }
            }
            if let Some(c) = conn.as_mut() {
                match tokio::time::timeout(
                    settings.timeout,
                    publish(c, &target.topic, qos, bytes.clone()),
                )
                .await
                {
                    Ok(Ok(())) => {
                        ok = true;
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(endpoint = %uri, attempt, error = %e, "MQTT notification failed");
                        conn = None;
                    }
                    Err(_) => conn = None,
                }
            }
            if attempt < settings.retries {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        job.live.record_outcome(crate::ops::now(), ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_uris_parse_with_credentials_port_and_topic() {
        let t = parse("mqtt://u:p@127.0.0.1:1884/city/notify").unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 1884);
        assert_eq!(t.user, Some(("u".into(), "p".into())));
        assert_eq!(t.topic, "city/notify");
        assert_eq!(parse("mqtt://broker/t").unwrap().port, 1883);
        assert!(parse("http://x/y").is_none());
        assert_eq!(
            connection_key("mqtt://broker:1883/a").unwrap(),
            connection_key("mqtt://broker/b").unwrap()
        );
    }
}
