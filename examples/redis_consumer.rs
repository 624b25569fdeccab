//! A consumer on another host: reads a stream's current value from the Redis
//! that listenkeyd publishes to, then waits for each rotation
//! (`cargo run --example redis_consumer -- redis://cache.internal:6379/0 usdm-futures`).
//!
//! It subscribes before it reads, so a rotation between the two is never
//! missed, and acts only when `generation` moves (keepalives are announced too).

use futures_util::StreamExt;

/// The stream's JSON (as in the state file), or `None` when Redis holds no valid value.
async fn current(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<Option<serde_json::Value>> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(format!("listenkeyd:stream:{stream}"))
        .query_async(conn)
        .await?;
    Ok(raw.and_then(|t| serde_json::from_str(&t).ok()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned());
    let stream = args.next().unwrap_or_else(|| "usdm-futures".to_owned());
    let client = redis::Client::open(url)?;
    let mut events = client.get_async_pubsub().await?;
    events.subscribe("listenkeyd:events").await?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut generation = 0;
    if let Some(s) = current(&mut conn, &stream).await? {
        generation = s["generation"].as_u64().unwrap_or(0);
        println!("generation {generation}: connect with the value");
    }
    let mut messages = events.on_message();
    while let Some(m) = messages.next().await {
        let e: serde_json::Value = serde_json::from_str(&m.get_payload::<String>()?).unwrap_or_default();
        if e["stream"] != stream.as_str() || e["generation"].as_u64() <= Some(generation) {
            continue;
        }
        if let Some(s) = current(&mut conn, &stream).await? {
            generation = s["generation"].as_u64().unwrap_or(generation);
            println!("generation {generation}: reconnect with the new value"); // s["value"]
        }
    }
    Ok(())
}
