//! The APIs and version ranges Chronik serves and advertises in ApiVersions.
//!
//! One table, [`SUPPORTED_APIS`]: a row names the `kafka-protocol` request
//! type, the highest version real clients use, and the body layout the
//! decoder's allocation guard walks (see `guard.rs`). The advertised range is
//! computed: from the lowest version `kafka-protocol` 0.18 can both decode
//! (request) and encode (response), up to the smaller of the clients' maximum
//! and the crate's maximum. Adding an API (AddPartitionsToTxn, EndTxn, ...) is
//! one row here plus its layout in `guard.rs`, and fitting rules in `fit.rs`
//! for the response fields older versions lack.
//!
//! | key | API | advertised | kcat (librdkafka 2.0.2) | librdkafka 2.16 | kafka-python 3.0 | kafkajs 2.2 |
//! |---|---|---|---|---|---|---|
//! | 18 | ApiVersions | 0–4 | 0–3 | 0–3 | 0–4 | 0–2 |
//! | 3 | Metadata | 0–13 | 0–4 | 0–13 | 0–13 | 0–6 |
//! | 0 | Produce | 3–10 | 3–7 | 3–10 | 3–9 | 3–7 |
//! | 1 | Fetch | 4–16 | 4–11 | 4–16 | 4–12 | 4–11 |
//! | 2 | ListOffsets | 1–10 | 1–2 | 1–7 | 1–10 | 1–3 |
//! | 10 | FindCoordinator | 0–6 | 0–2 | 0–2 | 0–6 | 0–2 |
//! | 11 | JoinGroup | 0–9 | 0–5 | 0–5 | 0–7 | 0–5 |
//! | 14 | SyncGroup | 0–5 | 0–3 | 0–3 | 0–5 | 0–3 |
//! | 12 | Heartbeat | 0–4 | 0–3 | 0–3 | 0–4 | 0–3 |
//! | 13 | LeaveGroup | 0–5 | 0–1 | 0–1 | 0–5 | 0–3 |
//! | 8 | OffsetCommit | 2–9 | 2–7 | 2–9 | 2–8 | 2–5 |
//! | 9 | OffsetFetch | 1–9 | 1–7 | 1–9 | 1–8 | 1–4 |
//! | 15 | DescribeGroups | 0–5 | | | | |
//! | 16 | ListGroups | 0–5 | | | | |
//! | 42 | DeleteGroups | 0–2 | | | | |
//! | 47 | OffsetDelete | 0 | | | | |
//! | 22 | InitProducerId | 0–5 | 0–4 | 0–4 | 0–4 | 0–1 |
//! | 19 | CreateTopics | 2–7 | 2–4 | 2–4 | 2–7 | 2–3 |
//! | 20 | DeleteTopics | 1–6 | 1 | 1–4 | 1–6 | 1 |
//! | 37 | CreatePartitions | 0–3 | | | | |
//! | 32 | DescribeConfigs | 1–4 | 1 | 1 | 1–4 | 1–2 |
//! | 33 | AlterConfigs | 0–2 | | | | |
//! | 44 | IncrementalAlterConfigs | 0–1 | | | | |
//! | 60 | DescribeCluster | 0–2 | – | – | 0–2 | – |
//!
//! (Client columns: the version each client ends up using is the top of its
//! range intersected with ours.) Every client above can talk to Chronik, but
//! none may go below the crate's floors, which are Kafka 4.0's: clients older
//! than Kafka 0.11 / librdkafka 0.11 (Produce < 3, Fetch < 4, OffsetCommit
//! < 2, OffsetFetch < 1) are not supported, as with Kafka 4.0 itself. Fetch
//! v13+ names topics by id (Produce only from v13, not advertised), so the
//! broker must return topic ids in Metadata v10+ and resolve them in Fetch.
//! DescribeGroups stops at v5, below the crate's v6 (which adds a per-group
//! error message), and InitProducerId at v5, where the crate's request ends
//! (its response goes on to v6, KIP-939's two-phase commit).
//!
//! Two of the group APIs changed shape: FindCoordinator v4+ and OffsetFetch
//! v8+ carry a batch of keys or groups where older versions carry one.
//! Handlers answer in the batched layout; `fit.rs` lowers it to the single
//! one for older versions.

use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Message, Request, VersionRange};

use super::guard::{self, Schema};

/// One API Chronik serves: its key, the versions it advertises and accepts,
/// and the layout the decoder pre-checks.
#[derive(Debug)]
pub struct ApiSupport {
    /// The API key.
    pub key: ApiKey,
    /// The API's name, for logs and metric labels.
    pub name: &'static str,
    /// The versions advertised in ApiVersions and accepted on the wire.
    pub versions: VersionRange,
    pub(crate) schema: &'static Schema,
}

/// The advertised range for request type `R`: the crate's request and response
/// ranges intersected, capped at `client_max`.
const fn supported<R: Request>(client_max: i16) -> VersionRange {
    let (req, resp) = (R::VERSIONS, <R::Response as Message>::VERSIONS);
    let min = if req.min > resp.min {
        req.min
    } else {
        resp.min
    };
    let mut max = if req.max < resp.max {
        req.max
    } else {
        resp.max
    };
    if client_max < max {
        max = client_max;
    }
    assert!(
        min <= max,
        "no version both kafka-protocol and clients support"
    );
    VersionRange { min, max }
}

macro_rules! api {
    ($key:ident, $request:ty, max = $max:expr, $schema:ident) => {
        ApiSupport {
            key: ApiKey::$key,
            name: stringify!($key),
            versions: supported::<$request>($max),
            schema: &guard::$schema,
        }
    };
}

/// Every API Chronik serves, in ascending key order. Requests for any other
/// key, or outside a row's versions, are refused by the decoder.
pub static SUPPORTED_APIS: &[ApiSupport] = &[
    api!(Produce, ProduceRequest, max = 10, PRODUCE),
    api!(Fetch, FetchRequest, max = 16, FETCH),
    api!(ListOffsets, ListOffsetsRequest, max = 11, LIST_OFFSETS),
    api!(Metadata, MetadataRequest, max = 13, METADATA),
    api!(OffsetCommit, OffsetCommitRequest, max = 9, OFFSET_COMMIT),
    api!(OffsetFetch, OffsetFetchRequest, max = 9, OFFSET_FETCH),
    api!(
        FindCoordinator,
        FindCoordinatorRequest,
        max = 6,
        FIND_COORDINATOR
    ),
    api!(JoinGroup, JoinGroupRequest, max = 9, JOIN_GROUP),
    api!(Heartbeat, HeartbeatRequest, max = 4, HEARTBEAT),
    api!(LeaveGroup, LeaveGroupRequest, max = 5, LEAVE_GROUP),
    api!(SyncGroup, SyncGroupRequest, max = 5, SYNC_GROUP),
    api!(
        DescribeGroups,
        DescribeGroupsRequest,
        max = 5,
        DESCRIBE_GROUPS
    ),
    api!(ListGroups, ListGroupsRequest, max = 5, LIST_GROUPS),
    api!(ApiVersions, ApiVersionsRequest, max = 4, API_VERSIONS),
    api!(CreateTopics, CreateTopicsRequest, max = 7, CREATE_TOPICS),
    api!(DeleteTopics, DeleteTopicsRequest, max = 6, DELETE_TOPICS),
    api!(
        InitProducerId,
        InitProducerIdRequest,
        max = 5,
        INIT_PRODUCER_ID
    ),
    api!(
        DescribeConfigs,
        DescribeConfigsRequest,
        max = 4,
        DESCRIBE_CONFIGS
    ),
    api!(AlterConfigs, AlterConfigsRequest, max = 2, ALTER_CONFIGS),
    api!(
        CreatePartitions,
        CreatePartitionsRequest,
        max = 3,
        CREATE_PARTITIONS
    ),
    api!(DeleteGroups, DeleteGroupsRequest, max = 2, DELETE_GROUPS),
    api!(
        IncrementalAlterConfigs,
        IncrementalAlterConfigsRequest,
        max = 1,
        INCREMENTAL_ALTER_CONFIGS
    ),
    api!(OffsetDelete, OffsetDeleteRequest, max = 0, OFFSET_DELETE),
    api!(
        DescribeCluster,
        DescribeClusterRequest,
        max = 2,
        DESCRIBE_CLUSTER
    ),
];

/// The table row for `key`, if Chronik serves that API.
pub fn support(key: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|api| api.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: ApiKey) -> (i16, i16) {
        let v = support(key).expect("served").versions;
        (v.min, v.max)
    }

    #[test]
    fn advertised_ranges() {
        let table: Vec<_> = SUPPORTED_APIS
            .iter()
            .map(|a| (a.key as i16, a.versions.min, a.versions.max))
            .collect();
        assert_eq!(
            table,
            [
                (0, 3, 10),
                (1, 4, 16),
                (2, 1, 10),
                (3, 0, 13),
                (8, 2, 9),
                (9, 1, 9),
                (10, 0, 6),
                (11, 0, 9),
                (12, 0, 4),
                (13, 0, 5),
                (14, 0, 5),
                (15, 0, 5),
                (16, 0, 5),
                (18, 0, 4),
                (19, 2, 7),
                (20, 1, 6),
                (22, 0, 5),
                (32, 1, 4),
                (33, 0, 2),
                (37, 0, 3),
                (42, 0, 2),
                (44, 0, 1),
                (47, 0, 0),
                (60, 0, 2),
            ]
        );
        assert_eq!(
            range(ApiKey::ListOffsets),
            (1, 10),
            "crate caps kafka-python's 11"
        );
        // Floors the crate raises to Kafka 4.0's, above the lowest versions
        // librdkafka and kafkajs offer (clients pick the highest common
        // version, so none of them is shut out).
        assert_eq!(range(ApiKey::OffsetCommit), (2, 9), "librdkafka offers 0");
        assert_eq!(range(ApiKey::OffsetFetch), (1, 9), "librdkafka offers 0");
        // Capped by our own table, not the crate.
        assert_eq!(range(ApiKey::DescribeGroups), (0, 5), "crate has 6");
        // The crate's response reaches v6, its request only v5.
        assert_eq!(range(ApiKey::InitProducerId), (0, 5));
        // Transactions are not served yet.
        assert!(support(ApiKey::AddPartitionsToTxn).is_none());
    }

    #[test]
    fn rows_are_sorted_and_unique() {
        assert!(SUPPORTED_APIS
            .windows(2)
            .all(|w| (w[0].key as i16) < (w[1].key as i16)));
    }

    #[test]
    fn guard_flexibility_matches_the_request_header_version() {
        // Flexible requests use header v2; the guard must switch to compact
        // encodings at exactly the same version.
        for api in SUPPORTED_APIS {
            for v in api.versions.min..=api.versions.max {
                let flexible = api.key.request_header_version(v) == 2;
                assert_eq!(
                    v >= api.schema.flexible_from,
                    flexible,
                    "{:?} v{v}",
                    api.key
                );
            }
        }
    }
}
