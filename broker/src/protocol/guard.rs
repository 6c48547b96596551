//! A structural pre-check of request bodies, run before `kafka-protocol`
//! decodes them.
//!
//! Why it exists: `kafka-protocol` 0.18 reads an array's element count off the
//! wire and calls `Vec::with_capacity(count)` before decoding any element
//! (`protocol/types.rs`, `Array`/`CompactArray`). A 12-byte request claiming
//! 2^31 topics asks the allocator for tens of GiB; when that fails Rust
//! *aborts* the process (allocation failure is not a panic, so
//! `catch_unwind` cannot help). Upstream knows (kafka-protocol-rs PRs #152,
//! #161, #200, unmerged at 0.18).
//!
//! So before decoding, this module walks the body with the same structure the
//! generated decoders follow (one [`Schema`] per API, transcribed from
//! `kafka-protocol`'s generated `decode` functions) and rejects any array whose
//! count exceeds the bytes left (every element takes at least one byte). The
//! walk covers every element, so once it passes, every count the decoder will
//! read is backed by real bytes and allocations stay proportional to the frame.
//!
//! The walk mirrors the decoder exactly where it matters: fields present per
//! version, compact encodings in flexible versions, and known tagged fields,
//! which the generated code decodes from the main buffer by type (ignoring the
//! tag's size) while it skips unknown tags by size. It is lenient about things
//! that do not move the read position (nullability, UTF-8), which the real
//! decode still checks. Tests encode populated requests at every advertised
//! version and require the walk to consume exactly the encoded body.

use bytes::Buf;

/// One wire type, as far as the read position is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    /// A fixed-width value of this many bytes (ints, bool, uuid).
    Fixed(usize),
    /// A (nullable) string: i16 length, or compact varint length when flexible.
    Str,
    /// (Nullable) bytes or records: i32 length, or compact varint when flexible.
    Bytes,
    /// A (nullable) array: i32 count, or compact varint count when flexible.
    Array(&'static Ty),
    /// A nested structure (with its own tagged-field section when flexible).
    Struct(&'static Struct),
}

/// A field, present in versions `from..=to` of its message.
#[derive(Debug)]
pub(crate) struct Field {
    ty: Ty,
    from: i16,
    to: i16,
}

/// A tagged field the decoder knows and decodes by type, valid from `from`.
#[derive(Debug)]
pub(crate) struct Tag {
    tag: u32,
    ty: Ty,
    from: i16,
}

/// The fields and known tagged fields of one structure.
#[derive(Debug)]
pub(crate) struct Struct {
    fields: &'static [Field],
    tags: &'static [Tag],
}

/// The body layout of one request type across its versions.
#[derive(Debug)]
pub(crate) struct Schema {
    /// First version that uses compact encodings and tagged fields.
    pub(crate) flexible_from: i16,
    body: Struct,
}

/// Why a body failed the pre-check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    /// The body ends before the structure does.
    #[error("body truncated")]
    Truncated,
    /// A length or count is negative (other than -1 for null).
    #[error("negative length {0}")]
    NegativeLength(i64),
    /// An array claims more elements than there are bytes left.
    #[error("array of {count} elements in {remaining} remaining bytes")]
    ImpossibleCount {
        /// The claimed element count.
        count: u64,
        /// Bytes left in the body when the count was read.
        remaining: usize,
    },
    /// A known tagged field appears in a version that does not define it.
    #[error("tag {tag} is not valid in version {version}")]
    TagNotInVersion {
        /// The tag.
        tag: u32,
        /// The request version.
        version: i16,
    },
}

const fn f(ty: Ty) -> Field {
    Field {
        ty,
        from: 0,
        to: i16::MAX,
    }
}
const fn since(ty: Ty, from: i16) -> Field {
    Field {
        ty,
        from,
        to: i16::MAX,
    }
}
const fn until(ty: Ty, to: i16) -> Field {
    Field { ty, from: 0, to }
}
const fn between(ty: Ty, from: i16, to: i16) -> Field {
    Field { ty, from, to }
}
const fn st(fields: &'static [Field]) -> Struct {
    Struct { fields, tags: &[] }
}

const I8: Ty = Ty::Fixed(1);
const BOOL: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);
const STR: Ty = Ty::Str;

/// ApiVersionsRequest (flexible from v3).
pub(crate) const API_VERSIONS: Schema = Schema {
    flexible_from: 3,
    body: st(&[since(STR, 3), since(STR, 3)]),
};

/// MetadataRequest (flexible from v9).
pub(crate) const METADATA: Schema = Schema {
    flexible_from: 9,
    body: st(&[
        f(Ty::Array(&Ty::Struct(&st(&[since(UUID, 10), f(STR)])))),
        since(BOOL, 4),
        between(BOOL, 8, 10),
        since(BOOL, 8),
    ]),
};

/// ProduceRequest (flexible from v9). Records stay opaque bytes here.
pub(crate) const PRODUCE: Schema = Schema {
    flexible_from: 9,
    body: st(&[
        f(STR),
        f(I16),
        f(I32),
        f(Ty::Array(&Ty::Struct(&st(&[
            until(STR, 12),
            since(UUID, 13),
            f(Ty::Array(&Ty::Struct(&st(&[f(I32), f(Ty::Bytes)])))),
        ])))),
    ]),
};

/// FetchRequest (flexible from v12), with its known tagged fields.
pub(crate) const FETCH: Schema = Schema {
    flexible_from: 12,
    body: Struct {
        fields: &[
            until(I32, 14),
            f(I32),
            f(I32),
            f(I32),
            f(I8),
            since(I32, 7),
            since(I32, 7),
            f(Ty::Array(&Ty::Struct(&st(&[
                until(STR, 12),
                since(UUID, 13),
                f(Ty::Array(&Ty::Struct(&Struct {
                    fields: &[
                        f(I32),
                        since(I32, 9),
                        f(I64),
                        since(I32, 12),
                        since(I64, 5),
                        f(I32),
                    ],
                    tags: &[
                        Tag {
                            tag: 0,
                            ty: UUID,
                            from: 17,
                        },
                        Tag {
                            tag: 1,
                            ty: I64,
                            from: 18,
                        },
                    ],
                }))),
            ])))),
            since(
                Ty::Array(&Ty::Struct(&st(&[
                    between(STR, 7, 12),
                    since(UUID, 13),
                    since(Ty::Array(&I32), 7),
                ]))),
                7,
            ),
            since(STR, 11),
        ],
        tags: &[
            Tag {
                tag: 0,
                ty: STR,
                from: 0,
            },
            Tag {
                tag: 1,
                ty: Ty::Struct(&st(&[since(I32, 15), since(I64, 15)])),
                from: 15,
            },
        ],
    },
};

/// ListOffsetsRequest (flexible from v6).
pub(crate) const LIST_OFFSETS: Schema = Schema {
    flexible_from: 6,
    body: st(&[
        f(I32),
        since(I8, 2),
        f(Ty::Array(&Ty::Struct(&st(&[
            f(STR),
            f(Ty::Array(&Ty::Struct(&st(&[
                f(I32),
                since(I32, 4),
                f(I64),
            ])))),
        ])))),
        since(I32, 10),
    ]),
};

/// CreateTopicsRequest (flexible from v5).
pub(crate) const CREATE_TOPICS: Schema = Schema {
    flexible_from: 5,
    body: st(&[
        f(Ty::Array(&Ty::Struct(&st(&[
            f(STR),
            f(I32),
            f(I16),
            f(Ty::Array(&Ty::Struct(&st(&[f(I32), f(Ty::Array(&I32))])))),
            f(Ty::Array(&Ty::Struct(&st(&[f(STR), f(STR)])))),
        ])))),
        f(I32),
        f(BOOL),
    ]),
};

/// DeleteTopicsRequest (flexible from v4).
pub(crate) const DELETE_TOPICS: Schema = Schema {
    flexible_from: 4,
    body: st(&[
        since(Ty::Array(&Ty::Struct(&st(&[f(STR), f(UUID)]))), 6),
        until(Ty::Array(&STR), 5),
        f(I32),
    ]),
};

/// CreatePartitionsRequest (flexible from v2).
pub(crate) const CREATE_PARTITIONS: Schema = Schema {
    flexible_from: 2,
    body: st(&[
        f(Ty::Array(&Ty::Struct(&st(&[
            f(STR),
            f(I32),
            f(Ty::Array(&Ty::Struct(&st(&[f(Ty::Array(&I32))])))),
        ])))),
        f(I32),
        f(BOOL),
    ]),
};

/// DescribeConfigsRequest (flexible from v4).
pub(crate) const DESCRIBE_CONFIGS: Schema = Schema {
    flexible_from: 4,
    body: st(&[
        f(Ty::Array(&Ty::Struct(&st(&[
            f(I8),
            f(STR),
            f(Ty::Array(&STR)),
        ])))),
        f(BOOL),
        since(BOOL, 3),
    ]),
};

/// AlterConfigsRequest (flexible from v2).
pub(crate) const ALTER_CONFIGS: Schema = Schema {
    flexible_from: 2,
    body: st(&[
        f(Ty::Array(&Ty::Struct(&st(&[
            f(I8),
            f(STR),
            f(Ty::Array(&Ty::Struct(&st(&[f(STR), f(STR)])))),
        ])))),
        f(BOOL),
    ]),
};

/// IncrementalAlterConfigsRequest (flexible from v1).
pub(crate) const INCREMENTAL_ALTER_CONFIGS: Schema = Schema {
    flexible_from: 1,
    body: st(&[
        f(Ty::Array(&Ty::Struct(&st(&[
            f(I8),
            f(STR),
            f(Ty::Array(&Ty::Struct(&st(&[f(STR), f(I8), f(STR)])))),
        ])))),
        f(BOOL),
    ]),
};

/// DescribeClusterRequest (flexible in every version).
pub(crate) const DESCRIBE_CLUSTER: Schema = Schema {
    flexible_from: 0,
    body: st(&[f(BOOL), since(I8, 1), since(BOOL, 2)]),
};

/// OffsetCommitRequest (flexible from v8).
pub(crate) const OFFSET_COMMIT: Schema = Schema {
    flexible_from: 8,
    body: st(&[
        f(STR),
        f(I32),
        f(STR),
        since(STR, 7),
        until(I64, 4),
        f(Ty::Array(&Ty::Struct(&st(&[
            f(STR),
            f(Ty::Array(&Ty::Struct(&st(&[
                f(I32),
                f(I64),
                since(I32, 6),
                f(STR),
            ])))),
        ])))),
    ]),
};

/// OffsetFetchRequest (flexible from v6): one group and its topics up to v7,
/// a batch of groups from v8.
pub(crate) const OFFSET_FETCH: Schema = Schema {
    flexible_from: 6,
    body: st(&[
        until(STR, 7),
        until(
            Ty::Array(&Ty::Struct(&st(&[
                until(STR, 7),
                until(Ty::Array(&I32), 7),
            ]))),
            7,
        ),
        since(
            Ty::Array(&Ty::Struct(&st(&[
                since(STR, 8),
                since(STR, 9),
                since(I32, 9),
                since(
                    Ty::Array(&Ty::Struct(&st(&[
                        since(STR, 8),
                        since(Ty::Array(&I32), 8),
                    ]))),
                    8,
                ),
            ]))),
            8,
        ),
        since(BOOL, 7),
    ]),
};

/// FindCoordinatorRequest (flexible from v3): one key up to v3, a batch of
/// keys from v4.
pub(crate) const FIND_COORDINATOR: Schema = Schema {
    flexible_from: 3,
    body: st(&[until(STR, 3), since(I8, 1), since(Ty::Array(&STR), 4)]),
};

/// JoinGroupRequest (flexible from v6). Protocol metadata stays opaque bytes.
pub(crate) const JOIN_GROUP: Schema = Schema {
    flexible_from: 6,
    body: st(&[
        f(STR),
        f(I32),
        since(I32, 1),
        f(STR),
        since(STR, 5),
        f(STR),
        f(Ty::Array(&Ty::Struct(&st(&[f(STR), f(Ty::Bytes)])))),
        since(STR, 8),
    ]),
};

/// HeartbeatRequest (flexible from v4).
pub(crate) const HEARTBEAT: Schema = Schema {
    flexible_from: 4,
    body: st(&[f(STR), f(I32), f(STR), since(STR, 3)]),
};

/// LeaveGroupRequest (flexible from v4): one member up to v2, a batch of
/// members from v3.
pub(crate) const LEAVE_GROUP: Schema = Schema {
    flexible_from: 4,
    body: st(&[
        f(STR),
        until(STR, 2),
        since(
            Ty::Array(&Ty::Struct(&st(&[
                since(STR, 3),
                since(STR, 3),
                since(STR, 5),
            ]))),
            3,
        ),
    ]),
};

/// SyncGroupRequest (flexible from v4). Assignments stay opaque bytes.
pub(crate) const SYNC_GROUP: Schema = Schema {
    flexible_from: 4,
    body: st(&[
        f(STR),
        f(I32),
        f(STR),
        since(STR, 3),
        since(STR, 5),
        since(STR, 5),
        f(Ty::Array(&Ty::Struct(&st(&[f(STR), f(Ty::Bytes)])))),
    ]),
};

/// DescribeGroupsRequest (flexible from v5).
pub(crate) const DESCRIBE_GROUPS: Schema = Schema {
    flexible_from: 5,
    body: st(&[f(Ty::Array(&STR)), since(BOOL, 3)]),
};

/// ListGroupsRequest (flexible from v3; empty before v4).
pub(crate) const LIST_GROUPS: Schema = Schema {
    flexible_from: 3,
    body: st(&[since(Ty::Array(&STR), 4), since(Ty::Array(&STR), 5)]),
};

/// InitProducerIdRequest (flexible from v2).
pub(crate) const INIT_PRODUCER_ID: Schema = Schema {
    flexible_from: 2,
    body: st(&[f(STR), f(I32), since(I64, 3), since(I16, 3)]),
};

/// DeleteGroupsRequest (flexible from v2).
pub(crate) const DELETE_GROUPS: Schema = Schema {
    flexible_from: 2,
    body: st(&[f(Ty::Array(&STR))]),
};

/// OffsetDeleteRequest (v0 only, never flexible).
pub(crate) const OFFSET_DELETE: Schema = Schema {
    flexible_from: i16::MAX,
    body: st(&[
        f(STR),
        f(Ty::Array(&Ty::Struct(&st(&[
            f(STR),
            f(Ty::Array(&Ty::Struct(&st(&[f(I32)])))),
        ])))),
    ]),
};

impl Schema {
    /// Walks `body` as version `version` of this request; returns the number
    /// of bytes the structure occupies (callers may ignore trailing bytes).
    pub(crate) fn check(&self, version: i16, body: &[u8]) -> Result<usize, GuardError> {
        let mut walker = Walker {
            buf: body,
            version,
            flexible: version >= self.flexible_from,
        };
        walker.structure(&self.body)?;
        Ok(body.len() - walker.buf.len())
    }
}

struct Walker<'a> {
    buf: &'a [u8],
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn skip(&mut self, n: usize) -> Result<(), GuardError> {
        if self.buf.len() < n {
            return Err(GuardError::Truncated);
        }
        self.buf.advance(n);
        Ok(())
    }

    fn i16(&mut self) -> Result<i16, GuardError> {
        self.buf.try_get_i16().map_err(|_| GuardError::Truncated)
    }

    fn i32(&mut self) -> Result<i32, GuardError> {
        self.buf.try_get_i32().map_err(|_| GuardError::Truncated)
    }

    /// Kafka's unsigned varint exactly as `kafka-protocol` reads it: at most
    /// five bytes, bits beyond 32 dropped.
    fn uvarint(&mut self) -> Result<u32, GuardError> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = u32::from(self.buf.try_get_u8().map_err(|_| GuardError::Truncated)?);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Reads a length prefix: compact (varint, 0 = null) when flexible,
    /// otherwise `classic` (-1 = null). Returns `None` for null.
    fn length(
        &mut self,
        classic: fn(&mut Self) -> Result<i64, GuardError>,
    ) -> Result<Option<u64>, GuardError> {
        if self.flexible {
            Ok(self.uvarint()?.checked_sub(1).map(u64::from))
        } else {
            match classic(self)? {
                -1 => Ok(None),
                n if n < 0 => Err(GuardError::NegativeLength(n)),
                n => Ok(Some(n as u64)),
            }
        }
    }

    fn skip_len(&mut self, len: Option<u64>) -> Result<(), GuardError> {
        match len {
            None => Ok(()),
            Some(n) => self.skip(usize::try_from(n).map_err(|_| GuardError::Truncated)?),
        }
    }

    fn ty(&mut self, ty: &Ty) -> Result<(), GuardError> {
        match ty {
            Ty::Fixed(n) => self.skip(*n),
            Ty::Str => {
                let len = self.length(|w| w.i16().map(i64::from))?;
                self.skip_len(len)
            }
            Ty::Bytes => {
                let len = self.length(|w| w.i32().map(i64::from))?;
                self.skip_len(len)
            }
            Ty::Array(element) => {
                let Some(count) = self.length(|w| w.i32().map(i64::from))? else {
                    return Ok(());
                };
                if count > self.buf.len() as u64 {
                    return Err(GuardError::ImpossibleCount {
                        count,
                        remaining: self.buf.len(),
                    });
                }
                for _ in 0..count {
                    self.ty(element)?;
                }
                Ok(())
            }
            Ty::Struct(s) => self.structure(s),
        }
    }

    fn structure(&mut self, s: &Struct) -> Result<(), GuardError> {
        for field in s.fields {
            if (field.from..=field.to).contains(&self.version) {
                self.ty(&field.ty)?;
            }
        }
        if self.flexible {
            let tagged = self.uvarint()?;
            for _ in 0..tagged {
                let tag = self.uvarint()?;
                let size = self.uvarint()?;
                match s.tags.iter().find(|t| t.tag == tag) {
                    Some(known) if self.version >= known.from => self.ty(&known.ty)?,
                    Some(_) => {
                        return Err(GuardError::TagNotInVersion {
                            tag,
                            version: self.version,
                        })
                    }
                    None => self.skip(size as usize)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_array_count_is_refused_without_walking_it() {
        // Metadata v1: topics array claiming i32::MAX entries, then nothing.
        let body = i32::MAX.to_be_bytes();
        assert_eq!(
            METADATA.check(1, &body),
            Err(GuardError::ImpossibleCount {
                count: i32::MAX as u64,
                remaining: 0
            })
        );
        // Compact (v9+): varint 0xffffffff = count u32::MAX - 1.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            METADATA.check(9, &body),
            Err(GuardError::ImpossibleCount {
                count: u64::from(u32::MAX - 1),
                remaining: 0
            })
        );
    }

    #[test]
    fn null_arrays_and_strings_and_negative_lengths() {
        // Metadata v1 with a null topic array (= all topics): just the count.
        assert_eq!(METADATA.check(1, &(-1i32).to_be_bytes()), Ok(4));
        assert_eq!(
            METADATA.check(1, &(-2i32).to_be_bytes()),
            Err(GuardError::NegativeLength(-2))
        );
        // A string length of -3 inside a topic entry.
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend((-3i16).to_be_bytes());
        assert_eq!(
            METADATA.check(1, &body),
            Err(GuardError::NegativeLength(-3))
        );
    }

    #[test]
    fn known_tag_outside_its_versions_is_refused_like_the_decoder_does() {
        // Fetch v12 body with empty arrays and tag 1 (ReplicaState, v15+).
        let mut body = Vec::new();
        body.extend(0i32.to_be_bytes()); // replica_id
        body.extend([0; 12]); // max_wait, min_bytes, max_bytes
        body.push(0); // isolation_level
        body.extend([0; 8]); // session id + epoch
        body.extend([1, 1, 1]); // topics [], forgotten [], rack_id ""
        let mut ok = body.clone();
        ok.push(0);
        assert_eq!(FETCH.check(12, &ok), Ok(ok.len()));
        body.extend([1, 1, 12]); // one tagged field: tag 1, size 12
        body.extend([0; 12]);
        assert_eq!(
            FETCH.check(12, &body),
            Err(GuardError::TagNotInVersion {
                tag: 1,
                version: 12
            })
        );
    }
}
