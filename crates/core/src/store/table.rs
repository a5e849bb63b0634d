//! [`EventsTable`]: the DataFusion `TableProvider` over one website's events, as a snapshot of
//! its hot batches and the Parquet segments that can hold rows of the queried range.
//!
//! Every filter is accepted as pushed down (`Inexact`): the Parquet scan gets it as its
//! predicate and prunes row groups and pages with the segments' statistics, and DataFusion keeps
//! a `FilterExec` above the scan for the rows that pruning cannot drop (and for the hot batches).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::config::TableParquetOptions;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use crate::schema::col::{KIND, TS, WEBSITE_ID};
use crate::schema::{ATTRS, AttrValue};

/// A Parquet segment file as the scan sees it.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    /// Path inside the local file system object store (absolute, without the leading `/`).
    pub object_path: String,
    /// File size in bytes.
    pub size: u64,
}

/// A consistent snapshot of one website's events for one query.
pub struct EventsTable {
    /// The schema the table answers with (see [`EventsTable::with_string_views`]).
    schema: SchemaRef,
    /// The schema the hot batches are stored in.
    stored_schema: SchemaRef,
    hot: Vec<RecordBatch>,
    segments: Vec<SegmentFile>,
    /// Scan each segment as its own partition, declared sorted by time.
    time_ordered: bool,
    /// Filter rows inside the Parquet scan (see [`EventsTable::with_row_filtering`]).
    row_filtering: bool,
}

impl fmt::Debug for EventsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventsTable")
            .field("hot_batches", &self.hot.len())
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl EventsTable {
    /// A table over `hot` batches and `segments`, all of `schema`.
    pub fn new(schema: SchemaRef, hot: Vec<RecordBatch>, segments: Vec<SegmentFile>) -> Self {
        EventsTable {
            stored_schema: Arc::clone(&schema),
            schema,
            hot,
            segments,
            time_ordered: false,
            row_filtering: false,
        }
    }

    /// The same table scanning each segment as its own partition in its stored (time) order,
    /// so that a plan that needs every event in time order merges the segments instead of
    /// sorting them all. Only for such plans: others lose the spreading of files over the
    /// target partitions, and some aggregations (an ordered `first_value`) get slower.
    pub fn in_time_order(mut self) -> Self {
        self.time_ordered = true;
        self
    }

    /// The same table with its Parquet scan filtering rows itself (DataFusion's
    /// `pushdown_filters`): the filter columns are decoded first and the others only where they
    /// match. That pays for lookups that keep a few rows of each row group; for aggregates whose
    /// filters keep many (a country, a device), decoding what pruning admits and filtering it
    /// above the scan is faster, which is what a table does without it. Pruning by statistics,
    /// page index and Bloom filter happens either way.
    pub fn with_row_filtering(mut self) -> Self {
        self.row_filtering = true;
        self
    }

    /// The same table with the session attributes, the event kind and the website id read as
    /// string views (`Utf8View`) instead of `Utf8`: Parquet decodes them without copying each
    /// value, and filters and groups compare short values inline. For aggregates: at 4M events
    /// countries took 0.71x the time, a filtered time series 0.9x, the overview 0.96x
    /// (benches/README, "Plans over Parquet"). Pages, ids and other long values stay `Utf8`:
    /// with every string a view, the pages breakdown held twice the memory.
    pub fn with_string_views(mut self) -> Self {
        let views: Vec<&str> = ATTRS
            .iter()
            .filter(|a| matches!(a.value, AttrValue::Text { .. }))
            .map(|a| a.column)
            .chain([KIND, WEBSITE_ID])
            .collect();
        let fields: Vec<Field> = (self.stored_schema.fields().iter())
            .map(|f| match f.data_type() {
                DataType::Utf8 if views.contains(&f.name().as_str()) => {
                    f.as_ref().clone().with_data_type(DataType::Utf8View)
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        let metadata = self.stored_schema.metadata().clone();
        self.schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        self
    }

    /// The hot batches' `projection`, in the table's schema (string views cast from the
    /// stored strings, for the projected columns only).
    fn hot_scan(&self, projection: Option<&Vec<usize>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        if Arc::ptr_eq(&self.schema, &self.stored_schema) {
            return Ok(MemorySourceConfig::try_new_exec(
                std::slice::from_ref(&self.hot),
                Arc::clone(&self.schema),
                projection.cloned(),
            )?);
        }
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let indices = projection.unwrap_or(&all);
        let projected = Arc::new(self.schema.project(indices)?);
        let batches = (self.hot.iter())
            .map(|b| {
                let columns = (indices.iter().zip(projected.fields()))
                    .map(|(&i, f)| cast(b.column(i), f.data_type()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RecordBatch::try_new(Arc::clone(&projected), columns)?)
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            projected,
            None,
        )?)
    }

    fn parquet_scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..TableParquetOptions::default()
        };
        options.global.pushdown_filters = self.row_filtering;
        let mut source =
            ParquetSource::new(Arc::clone(&self.schema)).with_table_parquet_options(options);
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let url = ObjectStoreUrl::local_filesystem();
        let store = state.runtime_env().object_store(&url)?;
        let metadata_cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        source = source.with_parquet_file_reader_factory(Arc::new(
            CachedParquetFileReaderFactory::new(store, metadata_cache),
        ));

        let file = |s: &SegmentFile| PartitionedFile::new(s.object_path.clone(), s.size);
        let mut config = FileScanConfigBuilder::new(url, Arc::new(source));
        if self.time_ordered {
            // Every segment is written sorted by time.
            let groups = self.segments.iter().map(|s| FileGroup::new(vec![file(s)]));
            let ts = datafusion::physical_expr::expressions::col(TS, &self.schema)?;
            let by_time = LexOrdering::new(vec![PhysicalSortExpr::new_default(ts)]);
            config = config
                .with_file_groups(groups.collect())
                .with_output_ordering(by_time.into_iter().collect());
        } else {
            // Spread the files over as many groups as there are target partitions.
            let partitions = state.config_options().execution.target_partitions.max(1);
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); partitions.min(self.segments.len())];
            for (i, s) in self.segments.iter().enumerate() {
                let n = groups.len();
                groups[i % n].push(file(s));
            }
            config = config.with_file_groups(groups.into_iter().map(FileGroup::new).collect());
        }
        let config = config.with_projection_indices(projection.cloned())?.build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !self.hot.is_empty() {
            inputs.push(self.hot_scan(projection)?);
        }
        if !self.segments.is_empty() {
            inputs.push(self.parquet_scan(state, projection, filters)?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}
