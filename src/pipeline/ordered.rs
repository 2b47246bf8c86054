//! An order-preserving parallel map with bounded look-ahead, used to decode frames on the rayon
//! pool while the stage chain consumes them one at a time in sequence order.

use std::sync::mpsc::{sync_channel, Receiver};

/// Runs `f` over `items` on the rayon pool, at most `lookahead` ahead of the consumer, and yields
/// the results in the items' order. Dropping the iterator stops new work being started.
pub fn ordered_map<I, T, F>(items: I, lookahead: usize, f: F) -> impl Iterator<Item = T>
where
    I: IntoIterator + Send + 'static,
    I::IntoIter: Send,
    I::Item: Send + 'static,
    T: Send + 'static,
    F: Fn(I::Item) -> T + Send + Sync + 'static,
{
    // A queue of one-shot receivers, one per item, in order: its capacity bounds the work
    // started ahead of the consumer.
    let (queue_tx, queue_rx) = sync_channel::<Receiver<T>>(lookahead.max(1));
    let f = std::sync::Arc::new(f);
    std::thread::spawn(move || {
        for item in items {
            let (tx, rx) = sync_channel(1);
            let f = f.clone();
            rayon::spawn(move || {
                let _ = tx.send(f(item));
            });
            if queue_tx.send(rx).is_err() {
                break; // consumer gone
            }
        }
    });
    queue_rx.into_iter().filter_map(|rx| rx.recv().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_under_uneven_work() {
        let out: Vec<u64> = ordered_map(0..200u64, 8, |i| {
            std::thread::sleep(std::time::Duration::from_micros((200 - i) % 7 * 50));
            i * i
        })
        .collect();
        assert_eq!(out, (0..200u64).map(|i| i * i).collect::<Vec<_>>());
    }
}
