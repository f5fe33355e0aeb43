//! Issue 14: d4-core's UI "kick" (`SADD server:sensor_to_kick <uuid>` in the stream
//! database, played by a Python stand-in of its Flask view) takes effect on a real
//! `d4 server --redis` whose databases are split as d4-core's: the sensor's connection is
//! closed at once — not only when some sensor sends, as in d4-core — and the sensor is
//! blocked for 30 s as by `d4 sensor kick`.

use std::time::Duration;

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::SensorRegistration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

const SENSOR_KEY: &str = "kick test sensor key";

fn frame(uuid: Uuid, payload: &[u8]) -> Vec<u8> {
    Encoder::new(uuid, SENSOR_KEY.as_bytes(), 3)
        .encode(d4_store::now(), payload)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_d4core_ui_kick_closes_the_connection() {
    let redis = d4_testkit::RedisServer::start();
    let (db0, db1, db2) = (redis.url_db(0), redis.url_db(1), redis.url_db(2));
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(
        dir.path(),
        &[
            "--redis",
            &db0,
            "--redis-metadata",
            &db1,
            "--redis-queue",
            &db2,
        ],
    );
    let store = server.store().await;
    let sensor = Uuid::new_v4();
    store
        .register_sensor(SensorRegistration {
            uuid: sensor,
            hmac_key: Some(SENSOR_KEY.into()),
            mail: None,
            third_party: false,
            description: None,
            approve: true,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut conn = TcpStream::connect(server.plain).await.unwrap();
    conn.write_all(&frame(sensor, b"before the kick\n"))
        .await
        .unwrap();
    assert!(!closed_within(&mut conn, 1).await, "accepted");

    // The kick button of d4-core's sensor page; nothing is sent meanwhile.
    let s32 = sensor.simple().to_string();
    d4_testkit::d4core_script("d4core_ui.py", &["kick", &db0, &s32], "");
    assert!(
        closed_within(&mut conn, 8).await,
        "the d4-core kick closed the connection"
    );
    // What d4-core's sensor page shows: no kick pending, the temporary block.
    let state: serde_json::Value = serde_json::from_str(&d4_testkit::d4core_script(
        "d4core_ui.py",
        &["kick-state", &db0, &s32],
        "",
    ))
    .unwrap();
    assert_eq!(
        state,
        serde_json::json!({"to_kick": [], "temp_blacklist_uuid": true}),
        "the kick request is consumed, the 30 s block d4-core's servers honour is set"
    );
    let mut again = TcpStream::connect(server.plain).await.unwrap();
    again
        .write_all(&frame(sensor, b"too soon\n"))
        .await
        .unwrap();
    assert!(closed_within(&mut again, 8).await, "blocked for 30 s");
    let err = store.get_sensor(sensor).await.unwrap().unwrap().last_error;
    assert!(err.is_some(), "the refusal is recorded");
    drop(server);
}
