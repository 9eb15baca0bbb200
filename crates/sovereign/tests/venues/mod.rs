//! The NinjaTrader stand-in (`sovereign gateway simulate ninjatrader DIR`) against the file
//! formats NinjaTrader documents: order instruction files taken from `incoming`, order state,
//! position and connection files written to `outgoing`, a restart clearing `outgoing`, a
//! connection that drops.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{unique_dir, wait_for, BIN, PATIENCE};

struct StandIn(Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl StandIn {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn oif(dir: &Path, n: u32, lines: &str) {
    // Written elsewhere and renamed in, as the engine does: never a half-written file.
    let staged = dir.join(format!("oif{n}.tmp"));
    std::fs::write(&staged, lines).unwrap();
    std::fs::rename(&staged, dir.join("incoming").join(format!("oif{n}.txt"))).unwrap();
}

async fn file_says(dir: &Path, name: &str, want: &str) {
    let path = dir.join("outgoing").join(name);
    wait_for(&format!("{name} to say {want}"), PATIENCE, || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        async move { (text.trim() == want).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn the_stand_in_works_the_folder_as_ninjatrader_does() {
    let dir = unique_dir("sovereign-e2e-ninja");
    let child = Command::new(BIN)
        .args(["gateway", "simulate", "ninjatrader"])
        .arg(&dir)
        .args(["--price", "5000.25", "--partial", "1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stand-in.log")).unwrap())
        .spawn()
        .unwrap();
    let venue = StandIn(child);
    file_says(&dir, "Simulated.txt", "CONNECTED").await;

    // A market order fills one contract per poll; the state file is cumulative.
    oif(
        &dir,
        1,
        "PLACE;Sim101;ES 03-27;BUY;2;MARKET;;;DAY;;sov-1;;\r\n",
    );
    file_says(&dir, "sov-1.txt", "FILLED;2;5000.25").await;
    file_says(
        &dir,
        "ES 03-27 Globex_Sim101_Position.txt",
        "LONG;2;5000.25",
    )
    .await;
    assert!(
        !dir.join("incoming/oif1.txt").exists(),
        "a taken file is deleted"
    );

    // A resting limit, changed, then canceled; a malformed line is refused and does nothing.
    oif(
        &dir,
        2,
        "PLACE;Sim101;ES 03-27;SELL;1;LIMIT;5100;;GTC;;sov-2;;\nPLACE;Sim101;ES 03-27;HOLD;1;MARKET;;;DAY;;sov-3;;\n",
    );
    file_says(&dir, "sov-2.txt", "WORKING;0;0").await;
    oif(&dir, 3, "CHANGE;;;;0;;5000;0;;;sov-2;;\n");
    file_says(&dir, "sov-2.txt", "FILLED;1;5000.25").await;
    file_says(
        &dir,
        "ES 03-27 Globex_Sim101_Position.txt",
        "LONG;1;5000.25",
    )
    .await;
    oif(
        &dir,
        4,
        "PLACE;Sim101;ES 03-27;BUY;1;LIMIT;4000;;DAY;;sov-4;;\nCANCEL;;;;;;;;;;sov-4;;\n",
    );
    file_says(&dir, "sov-4.txt", "CANCELLED;0;0").await;
    assert!(!dir.join("outgoing/sov-3.txt").exists());
    let log = std::fs::read_to_string(dir.join("stand-in.log")).unwrap();
    assert!(log.contains("refused") && log.contains("HOLD"), "{log}");

    // Flatten everything: the position closes at the price.
    oif(&dir, 5, "FLATTENEVERYTHING;;;;;;;;;;;;\n");
    file_says(&dir, "ES 03-27 Globex_Sim101_Position.txt", "FLAT;0;0").await;

    // A restart clears outgoing (the connection file comes back).
    venue.signal("HUP");
    wait_for("outgoing cleared", PATIENCE, || {
        let gone = !dir.join("outgoing/sov-1.txt").exists();
        async move { gone.then_some(()) }
    })
    .await;
    file_says(&dir, "Simulated.txt", "CONNECTED").await;

    // The connection drops: new orders are rejected.
    venue.signal("USR1");
    file_says(&dir, "Simulated.txt", "DISCONNECTED").await;
    oif(
        &dir,
        6,
        "PLACE;Sim101;ES 03-27;BUY;1;MARKET;;;DAY;;sov-6;;\n",
    );
    file_says(&dir, "sov-6.txt", "REJECTED;0;0").await;
}
