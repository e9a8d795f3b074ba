//! The pull policy: making sure the engine has a job's images before
//! anything is created, with errors that name the image.

use super::error::ContainerError;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::engine::Engine;
use super::spec::ContainerSpec;
use super::{engine_message, is_not_found};
use crate::config::PullPolicy;

/// `(repository, tag)` for a pull: an image without a tag or digest means
/// `latest` (an empty tag would pull every tag).
fn pull_ref(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_owned(), String::new());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => {
            let repo = &image[..image.len() - tag.len() - 1];
            (repo.to_owned(), tag.to_owned())
        }
        None => (image.to_owned(), "latest".to_owned()),
    }
}

/// Makes sure the engine has `spec.image` under `policy`; returns the
/// image's environment (`KEY=VALUE`), for the job container's `PATH`.
pub(crate) async fn ensure(
    engine: &Engine,
    spec: &ContainerSpec,
    policy: PullPolicy,
) -> Result<Vec<String>, ContainerError> {
    let image = &spec.image;
    let inspect = || async {
        match engine.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(i.config.and_then(|c| c.env).unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(ContainerError::Inspect {
                image: image.clone(),
                message: engine_message(&e),
            }),
        }
    };
    match policy {
        PullPolicy::Never => inspect()
            .await?
            .ok_or_else(|| ContainerError::NotPulled(image.clone())),
        PullPolicy::IfNotPresent => match inspect().await? {
            Some(env) => Ok(env),
            None => {
                pull(engine, spec).await?;
                inspect()
                    .await?
                    .ok_or_else(|| ContainerError::MissingAfterPull(image.clone()))
            }
        },
        PullPolicy::Always => {
            pull(engine, spec).await?;
            inspect()
                .await?
                .ok_or_else(|| ContainerError::MissingAfterPull(image.clone()))
        }
    }
}

async fn pull(engine: &Engine, spec: &ContainerSpec) -> Result<(), ContainerError> {
    let image = &spec.image;
    let (repo, tag) = pull_ref(image);
    let mut options = CreateImageOptionsBuilder::new().from_image(&repo);
    if !tag.is_empty() {
        options = options.tag(&tag);
    }
    let credentials = spec.credentials.as_ref().map(|(u, p)| DockerCredentials {
        username: Some(u.clone()),
        password: Some(p.clone()),
        ..Default::default()
    });
    let mut progress = engine
        .docker
        .create_image(Some(options.build()), None, credentials);
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    let message = detail.message.unwrap_or_default();
                    return Err(ContainerError::Pull {
                        image: image.clone(),
                        message,
                    });
                }
            }
            Err(e) => {
                return Err(ContainerError::Pull {
                    image: image.clone(),
                    message: engine_message(&e),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_a_tag() {
        assert_eq!(pull_ref("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            pull_ref("localhost:5000/a/b:1.2"),
            ("localhost:5000/a/b".into(), "1.2".into())
        );
        assert_eq!(
            pull_ref("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), "latest".into())
        );
        assert_eq!(
            pull_ref("x@sha256:ab"),
            ("x@sha256:ab".into(), String::new())
        );
    }
}
