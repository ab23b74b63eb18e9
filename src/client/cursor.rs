//! [`Cursor`]: what `find`, `aggregate`, `watch`, `list_indexes` and
//! `ClientEncryption::get_keys` return, under one name.

use crate::Error;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The results of a query, decrypted, as a [`Stream`] of
/// `Result<T, Error>`.
///
/// Returned by [`EncryptedCollection::find`](crate::EncryptedCollection::find)
/// (`T` the collection's document type),
/// [`aggregate`](crate::EncryptedCollection::aggregate) (`bson::Document`),
/// [`watch`](crate::EncryptedCollection::watch) (the driver's
/// `ChangeStreamEvent<T>`),
/// [`list_indexes`](crate::EncryptedCollection::list_indexes) (the driver's
/// `IndexModel`) and [`ClientEncryption::get_keys`](crate::ClientEncryption::get_keys)
/// (key documents). A server cursor is followed (`getMore`) and each batch
/// decrypted as the stream reaches it, with one key-vault query per batch;
/// dropping the cursor early kills the server's cursor.
///
/// `'a` is the borrow of the session the operation runs in
/// (`.session(&mut s)`), if any. A cursor is `Unpin`, so futures-util's
/// [`StreamExt`](futures_util::StreamExt) and
/// [`TryStreamExt`](futures_util::TryStreamExt) methods work on it as it
/// is:
///
/// ```no_run
/// # async fn run(people: csfle::EncryptedCollection<bson::Document>) -> Result<(), csfle::Error> {
/// use futures_util::{StreamExt, TryStreamExt};
///
/// let mut cursor = people.find(bson::doc! {"ssn": "457-55-5462"}).await?;
/// while let Some(person) = cursor.next().await {
///     println!("{}", person?);
/// }
/// let all: Vec<bson::Document> = people.find(bson::doc! {}).await?.try_collect().await?;
/// # Ok(()) }
/// ```
#[must_use = "a cursor yields nothing until polled"]
pub struct Cursor<'a, T> {
    inner: BoxStream<'a, Result<T, Error>>,
}

impl<'a, T> Cursor<'a, T> {
    /// A cursor over `inner`.
    pub(crate) fn new(inner: BoxStream<'a, Result<T, Error>>) -> Self {
        Cursor { inner }
    }
}

// By hand: the items need not be `Debug`, and the stream is not.
impl<T> std::fmt::Debug for Cursor<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("item", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T> Stream for Cursor<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `Cursor` is `Unpin` (its stream is boxed), so it can be reached
        // through the pin.
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, TryStreamExt};

    fn unpin<U: Unpin + Send>(_: &U) {}

    /// `next` without pinning, `try_collect`, and an error passed through.
    #[tokio::test]
    async fn streams_like_the_stream_it_wraps() {
        let items: Vec<Result<u32, Error>> = vec![Ok(1), Ok(2)];
        let mut cursor = Cursor::new(futures_util::stream::iter(items).boxed());
        unpin(&cursor);
        assert_eq!(cursor.next().await.transpose().unwrap(), Some(1));
        let rest: Vec<u32> = cursor.try_collect().await.unwrap();
        assert_eq!(rest, [2]);

        let failing: Vec<Result<u32, Error>> = vec![
            Ok(1),
            Err(Error::Client(crate::ClientError::InvalidArgument {
                argument: "test",
                reason: "a failing item",
            })),
        ];
        let cursor = Cursor::new(futures_util::stream::iter(failing).boxed());
        let e = cursor.try_collect::<Vec<u32>>().await.unwrap_err();
        assert!(e.to_string().contains("a failing item"), "{e}");
        let shown = format!(
            "{:?}",
            Cursor::new(futures_util::stream::empty::<Result<u8, Error>>().boxed())
        );
        assert!(shown.contains("u8"), "{shown}");
    }
}
