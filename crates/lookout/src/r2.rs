//! The only way app code reaches R2: each operation counts into the request's `r2_ops`.

use std::rc::Rc;

use worker::{Bucket, Object};

use crate::instrument::{Failure, RequestCtx};

/// A counted handle on the app's R2 bucket.
pub struct Files {
    bucket: Bucket,
    ctx: Rc<RequestCtx>,
}

impl Files {
    /// The request's bucket (`Options::r2_binding`).
    pub fn new(ctx: &Rc<RequestCtx>) -> Result<Files, Failure> {
        Ok(Files { bucket: ctx.env.bucket(ctx.options().r2_binding)?, ctx: Rc::clone(ctx) })
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), Failure> {
        self.ctx.record_r2();
        self.bucket.put(key, bytes).execute().await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.ctx.record_r2();
        let Some(obj): Option<Object> = self.bucket.get(key).execute().await? else { return Ok(None) };
        match obj.body() {
            Some(body) => Ok(Some(body.bytes().await?)),
            None => Ok(Some(Vec::new())),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), Failure> {
        self.ctx.record_r2();
        self.bucket.delete(key).await?;
        Ok(())
    }

    /// Keys under `prefix` (one list call; at most 1000 keys).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, Failure> {
        self.ctx.record_r2();
        let objects = self.bucket.list().prefix(prefix.to_string()).execute().await?;
        Ok(objects.objects().iter().map(|o| o.key()).collect())
    }
}
